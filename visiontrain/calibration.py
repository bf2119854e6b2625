"""Calibration of single-label probabilities, in numpy: scores and one temperature.

Shared by evaluation (which reports the scores) and serving (which fits and bakes a
temperature into an export), so it sits below both and imports nothing of the package.

    NLL    mean -log p(true class)
    Brier  mean over images of sum_c (p_c - onehot_c)^2  (0 best, 2 worst)
    ECE    sum over 15 equal-width confidence bins of |bin| / N * |accuracy - confidence|,
           where confidence is the top probability (Guo et al., 2017)
"""

from __future__ import annotations

from typing import Any

import numpy as np

ECE_BINS = 15
# Fewer validation images than this fit a temperature to noise; --calibrate refuses them.
MIN_CALIBRATION_IMAGES = 50
# Golden-section search over log T in this interval, to this width.
_LOG_T_RANGE = (np.log(0.05), np.log(20.0))
_LOG_T_TOLERANCE = 1e-4


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, np.float64) / temperature
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of softmax(logits / temperature)."""
    picked = log_softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.mean(picked))


def reliability(probabilities: np.ndarray, labels: np.ndarray,
                bins: int = ECE_BINS) -> dict[str, list]:
    """Per equal-width confidence bin: its edges, image count, mean confidence, accuracy.

    A bin holds confidences in (low, high]; the first also holds 0. Empty bins report
    confidence and accuracy 0 with count 0.
    """
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    safe = np.maximum(count, 1)
    return {
        "edges": edges.tolist(),
        "count": count.tolist(),
        "confidence": (np.bincount(index, confidence, bins) / safe).tolist(),
        "accuracy": (np.bincount(index, correct, bins) / safe).tolist(),
    }


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    table = reliability(probabilities, labels, bins)
    count = np.array(table["count"], np.float64)
    gap = np.abs(np.array(table["accuracy"]) - np.array(table["confidence"]))
    return float(np.sum(count / max(count.sum(), 1) * gap))


def brier(probabilities: np.ndarray, labels: np.ndarray) -> float:
    onehot = np.eye(probabilities.shape[1])[labels]
    return float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))


def scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """NLL, Brier, ECE (with its bin count) and accuracy of probabilities [N, C]."""
    picked = probabilities[np.arange(len(labels)), labels]
    return {
        "nll": float(np.mean(-np.log(np.maximum(picked, 1e-12)))),
        "brier": brier(probabilities, labels),
        "ece": expected_calibration_error(probabilities, labels),
        "ece_bins": ECE_BINS,
        "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
    }


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T).

    NLL is convex in 1/T, hence unimodal in log T: a golden-section search finds it.

    Raises:
      ValueError: fewer than MIN_CALIBRATION_IMAGES images.
    """
    if len(labels) < MIN_CALIBRATION_IMAGES:
        raise ValueError(
            f"Temperature scaling needs at least {MIN_CALIBRATION_IMAGES} validation images; "
            f"the validation split has {len(labels)}. Add validation images or drop --calibrate."
        )
    ratio = (np.sqrt(5.0) - 1) / 2
    low, high = _LOG_T_RANGE

    def loss(log_t):
        return nll(logits, labels, float(np.exp(log_t)))

    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    while high - low > _LOG_T_TOLERANCE:
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    return float(np.exp((low + high) / 2))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(logits, temperature))


def coverage_accuracy(probabilities: np.ndarray, labels: np.ndarray,
                      threshold: float) -> dict[str, float]:
    """Share of images accepted (top probability >= threshold) and accuracy on those."""
    accepted = probabilities.max(axis=1) >= threshold
    correct = probabilities.argmax(axis=1) == labels
    return {
        "threshold": float(threshold),
        "coverage": float(np.mean(accepted)),
        "accuracy_on_accepted": float(np.mean(correct[accepted])) if accepted.any() else 1.0,
    }


def abstain_threshold(probabilities: np.ndarray, labels: np.ndarray, target: float) -> float:
    """The lowest top-probability threshold whose accepted images reach `target` accuracy.

    Lowest threshold = highest coverage. Candidates are the images' own top probabilities,
    with ties accepted together (a threshold cannot split them).

    Raises:
      ValueError: not even the most confident images reach `target`.
    """
    confidence = probabilities.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    confidence = confidence[order]
    correct = (probabilities.argmax(axis=1) == labels)[order]
    accuracy = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    # Index of the last image of each run of equal confidences: where a threshold can cut.
    cuts = np.flatnonzero(np.append(confidence[1:] != confidence[:-1], True))
    reaching = cuts[accuracy[cuts] >= target]
    if not len(reaching):
        best = cuts[np.argmax(accuracy[cuts])]
        raise ValueError(
            f"No threshold reaches {target:g} accuracy on the accepted validation images: the "
            f"best is {accuracy[best]:.4f} (top {best + 1} images). Lower --abstain_target or "
            f"pass --abstain=P."
        )
    return float(confidence[reaching[-1]])
