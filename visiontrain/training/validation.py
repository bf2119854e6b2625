"""What the loop's in-training evaluation reports: metrics from the eval step's summed
counts, and their TensorBoard summaries, for single- and multi-label runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from visiontrain.evaluation import multilabel
from visiontrain.training import summaries


def metrics_of(sums: np.ndarray, tally: np.ndarray, multi_label: bool) -> dict[str, Any]:
    """Validation metrics of `steps.make_eval_step`'s sums and tally, over a whole split.

    Single-label: loss, accuracy, top5. Multi-label: loss, accuracy (the exact label-set
    match ratio at 0.5) and micro/macro F1 at 0.5; mAP and tuned thresholds need every
    score and are `visiontrain-evaluate`'s.
    """
    loss, top1, top5, count = sums.tolist()
    metrics = {"loss": loss / count, "accuracy": top1 / count}
    if multi_label:
        table = multilabel.f1_from_counts(tally)
        metrics.update(micro_f1=table["micro_f1"], macro_f1=table["macro_f1"])
    else:
        metrics["top5"] = top5 / count
    return {**metrics, "examples": int(count)}


def write_summaries(
    writer, logdir: str, kind: str, metrics: dict[str, Any], tally: np.ndarray,
    labels: list[str], step: int, chief: bool,
) -> None:
    """Every metric as a scalar (EMA weights' with an _ema suffix), and for single-label
    runs the confusion matrix image (chief only)."""
    suffix = "" if kind == "raw" else "_ema"
    with writer.as_default(step=step):
        for name, value in metrics.items():
            if name != "examples":
                tf.summary.scalar(name + suffix, value)
    if chief and tally.shape[1] == len(labels) and "top5" in metrics:
        summaries.write_confusion_matrix(logdir, "confusion_matrix" + suffix,
                                         tally.astype(np.int64), step, labels=labels)
