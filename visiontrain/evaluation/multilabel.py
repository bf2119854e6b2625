"""Multi-label metrics of per-label probabilities, in numpy (scikit-learn conventions).

`scores` are sigmoid probabilities [N, C], `truth` the multi-hot labels [N, C]. A label
is predicted when its score reaches its threshold. Undefined ratios (no prediction, no
positive) are 0, as scikit-learn's `zero_division=0`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=np.asarray(denominator) > 0)


def f1_from_counts(counts: np.ndarray) -> dict[str, Any]:
    """Per-label precision, recall and F1 and micro/macro F1 of [C, 3] (tp, fp, fn) counts."""
    tp, fp, fn = (np.asarray(counts, np.float64)[:, i] for i in range(3))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    micro = _ratio(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())
    return {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn,
            "micro_f1": float(micro), "macro_f1": float(np.mean(f1))}


def counts_at(scores: np.ndarray, truth: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """[C, 3] (tp, fp, fn) of predicting each label whose score reaches its threshold."""
    predicted = scores >= np.asarray(thresholds)[None, :]
    truth = truth.astype(bool)
    return np.stack([(predicted & truth).sum(0), (predicted & ~truth).sum(0),
                     (~predicted & truth).sum(0)], axis=1)


def average_precision(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-label AP: the mean of the precision at each positive's rank (sklearn's
    `average_precision_score`, ties broken by stable order); 0 for a label without positives."""
    result = np.zeros(scores.shape[1])
    for c in range(scores.shape[1]):
        order = np.argsort(-scores[:, c], kind="stable")
        hits = truth[order, c].astype(bool)
        if hits.any():
            precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
            result[c] = float(precision_at[hits].mean())
    return result


def tune_thresholds(
    scores: np.ndarray, truth: np.ndarray, target_precision: float = 0.0
) -> np.ndarray:
    """Per-label thresholds chosen on these examples (validation).

    With target_precision 0: the score threshold of maximum F1. Otherwise the lowest
    threshold whose precision reaches the target (the most recall at that precision);
    a label that never reaches it gets a threshold above every score (never predicted).
    Thresholds are midway between the chosen score and the next lower one, so the
    choice does not sit on one example's score.
    """
    thresholds = np.full(scores.shape[1], 0.5)
    for c in range(scores.shape[1]):
        order = np.argsort(-scores[:, c], kind="stable")
        ranked, hits = scores[order, c], truth[order, c].astype(bool)
        if not hits.any():
            continue
        tp = np.cumsum(hits)
        predicted = np.arange(1, len(hits) + 1)
        # Only cut where the next score is lower: equal scores are predicted together.
        cut = np.append(ranked[1:] < ranked[:-1], True)
        precision, recall = tp / predicted, tp / hits.sum()
        if target_precision:
            ok = np.flatnonzero(cut & (precision >= target_precision))
            if not len(ok):
                thresholds[c] = float(np.nextafter(ranked[0], np.inf))
                continue
            best = ok[-1]
        else:
            f1 = _ratio(2 * precision * recall, precision + recall)
            best = int(np.argmax(np.where(cut, f1, -1.0)))
        below = ranked[best + 1] if best + 1 < len(ranked) else 0.0
        thresholds[c] = float((ranked[best] + below) / 2)
    return thresholds


def summarize(
    scores: np.ndarray, truth: np.ndarray, names: Sequence[str], thresholds: np.ndarray
) -> dict[str, Any]:
    """The multi-label report at `thresholds`: per-label P/R/F1/support/AP, micro/macro F1,
    mAP, exact-match ratio and the label-cardinality error."""
    counts = counts_at(scores, truth, thresholds)
    table = f1_from_counts(counts)
    ap = average_precision(scores, truth)
    predicted = scores >= np.asarray(thresholds)[None, :]
    return {
        "task": "multi_label",
        "examples": int(len(scores)),
        "micro_f1": table["micro_f1"],
        "macro_f1": table["macro_f1"],
        "mAP": float(np.mean(ap)),
        "exact_match": float(np.mean(np.all(predicted == truth.astype(bool), axis=1))),
        # Mean |predicted labels - true labels| per example.
        "cardinality_error": float(np.mean(np.abs(predicted.sum(1) - truth.sum(1)))),
        "label_prior_mAP": float(np.mean(truth.mean(0))),
        "per_label": [
            {"label": names[c], "threshold": float(thresholds[c]),
             "precision": float(table["precision"][c]), "recall": float(table["recall"][c]),
             "f1": float(table["f1"][c]), "support": int(table["support"][c]),
             "ap": float(ap[c])}
            for c in range(scores.shape[1])
        ],
    }


def format_report(report: dict[str, Any]) -> str:
    """The per-label table and the averages, for the terminal."""
    width = max(len(row["label"]) for row in report["per_label"] + [{"label": "label"}])
    lines = [f"{'label':>{width}}  threshold  precision  recall     f1     AP  support"]
    for row in report["per_label"]:
        lines.append(f"{row['label']:>{width}}  {row['threshold']:9.3f}  {row['precision']:9.4f}"
                     f"  {row['recall']:6.4f}  {row['f1']:.4f}  {row['ap']:.4f}  "
                     f"{row['support']:7d}")
    lines.append(f"mAP {report['mAP']:.4f} (label prior {report['label_prior_mAP']:.4f})  "
                 f"micro F1 {report['micro_f1']:.4f}  macro F1 {report['macro_f1']:.4f}  "
                 f"exact match {report['exact_match']:.4f}  cardinality error "
                 f"{report['cardinality_error']:.4f}  examples {report['examples']}")
    return "\n".join(lines)
