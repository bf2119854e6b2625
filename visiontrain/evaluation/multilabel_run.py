"""`visiontrain-evaluate` on multi-label data: thresholds tuned on validation, the report
at those thresholds, and its picture of per-label AP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from visiontrain.evaluation import multilabel, predictors, render
from visiontrain.pipelines import record_sources


def _scores(predict: Callable, data_dir: str, split: str, batch_size: int):
    return predictors.collect_scores(predict, record_sources.encoded_records(data_dir, split,
                                                                        batch_size))


def tuned_thresholds(
    predict: Callable, data_dir: str, names: list[str], target_precision: float,
    batch_size: int,
) -> dict[str, Any]:
    """The thresholds record of a run: per label, tuned on the validation split.

    `target_precision` 0 picks each label's max-F1 threshold, else the lowest reaching it.
    """
    scores, truth = _scores(predict, data_dir, "validation", batch_size)
    thresholds = multilabel.tune_thresholds(scores, truth, target_precision)
    return {"labels": list(names), "thresholds": [float(t) for t in thresholds],
            "tuned_on": "validation", "rule": (f"precision >= {target_precision}"
                                               if target_precision else "max F1"),
            "data_dir": data_dir, "examples": int(len(scores))}


def evaluate(
    predict: Callable, data_dir: str, split: str, names: list[str],
    thresholds: dict[str, Any], batch_size: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(report, pictures) of `split` at the recorded per-label `thresholds`."""
    if list(thresholds["labels"]) != list(names):
        raise ValueError(f"The thresholds name labels {thresholds['labels']}, the data "
                         f"{names}; tune them again on this data (visiontrain-evaluate "
                         "--run_dir).")
    scores, truth = _scores(predict, data_dir, split, batch_size)
    report = multilabel.summarize(scores, truth, names, np.array(thresholds["thresholds"]))
    report["thresholds_rule"] = thresholds["rule"]
    ap = np.array([row["ap"] for row in report["per_label"]])
    pictures = {"per_label_ap": render.bar_chart(
        ap, names, f"AP per label on {split} (mAP {report['mAP']:.3f})")}
    return report, pictures


def write_scalars(logdir_writer, split: str, report: dict[str, Any]) -> None:
    """mAP, micro/macro F1, exact match, cardinality error and every label's AP and F1."""
    with logdir_writer.as_default(step=0):
        for name in ("mAP", "micro_f1", "macro_f1", "exact_match", "cardinality_error"):
            tf.summary.scalar(f"{split}/{name}", report[name])
        for row in report["per_label"]:
            tf.summary.scalar(f"{split}/ap/{row['label']}", row["ap"])
            tf.summary.scalar(f"{split}/f1/{row['label']}", row["f1"])
