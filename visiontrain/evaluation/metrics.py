"""Classification metrics of predicted probabilities, in numpy (sklearn conventions)."""

from __future__ import annotations

from typing import Any

import numpy as np

from visiontrain import calibration

_AVERAGED = ("precision", "recall", "f1")


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [C, C]: rows are true classes, columns predicted ones."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class; 0 where undefined (sklearn's default)."""
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive),
                          where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive),
                       where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def summarize(probabilities: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Top-1, top-5, loss, macro/weighted averages, per-class table, confusion matrix and
    calibration (NLL, Brier, ECE over `calibration.ECE_BINS` equal-width bins, reliability)."""
    num_classes = probabilities.shape[1]
    k = min(5, num_classes)
    top_k = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    picked = probabilities[np.arange(len(labels)), labels]
    matrix = confusion_matrix(labels, top_k[:, 0], num_classes)
    table = per_class(matrix)
    support = table["support"]
    weights = support / max(int(support.sum()), 1)
    names = list(names) if names else [str(i) for i in range(num_classes)]
    return {
        "accuracy": float(np.mean(top_k[:, 0] == labels)),
        "top5": float(np.mean(np.any(top_k == labels[:, None], axis=1))),
        "loss": float(np.mean(-np.log(np.maximum(picked, 1e-12)))),
        "examples": int(len(labels)),
        "macro_avg": {m: float(np.mean(table[m])) for m in _AVERAGED},
        "weighted_avg": {m: float(np.sum(table[m] * weights)) for m in _AVERAGED},
        "per_class": [
            {"class": names[i], **{m: float(table[m][i]) for m in ("precision", "recall", "f1")},
             "support": int(support[i])}
            for i in range(num_classes)
        ],
        "confusion_matrix": matrix.tolist(),
        "calibration": {
            **{k: v for k, v in calibration.scores(probabilities, labels).items()
               if k != "accuracy"},
            "reliability": calibration.reliability(probabilities, labels),
        },
    }


def add_train_frequency(report: dict[str, Any], counts: dict[str, int]) -> None:
    """Adds each class's training count and share to the per-class rows, so recall can be
    read against how often the class was seen (imbalanced data)."""
    total = max(sum(counts.values()), 1)
    for row in report["per_class"]:
        row["train_count"] = int(counts.get(row["class"], 0))
        row["train_share"] = row["train_count"] / total


def format_report(report: dict[str, Any]) -> str:
    """The per-class table as text, like sklearn's classification_report, with the
    training share of each class when `add_train_frequency` added it."""
    width = max([len(row["class"]) for row in report["per_class"]] + [12])
    shares = all("train_share" in row for row in report["per_class"])
    lines = [f"{'':>{width}}  precision  recall  f1-score  support"
             + ("  train share" if shares else "")]
    for row in report["per_class"]:
        lines.append(
            f"{row['class']:>{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  "
            f"{row['f1']:8.4f}  {row['support']:7d}"
            + (f"  {row['train_share']:11.4f}" if shares else "")
        )
    for name in ("macro_avg", "weighted_avg"):
        avg = report[name]
        lines.append(
            f"{name.replace('_', ' '):>{width}}  {avg['precision']:9.4f}  {avg['recall']:6.4f}  "
            f"{avg['f1']:8.4f}  {report['examples']:7d}"
        )
    lines.append(f"top-1 {report['accuracy']:.4f}  top-5 {report['top5']:.4f}  "
                 f"loss {report['loss']:.4f}  examples {report['examples']}")
    calib = report["calibration"]
    lines.append(f"NLL {calib['nll']:.4f}  Brier {calib['brier']:.4f}  ECE {calib['ece']:.4f} "
                 f"({calib['ece_bins']} equal-width confidence bins)")
    return "\n".join(lines)
