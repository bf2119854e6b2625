"""Calibration scores against hand computations and sklearn, and the temperature fit."""

import numpy as np
import pytest
from sklearn.metrics import log_loss

from visiontrain import calibration


def _overconfident(n=400, classes=4, seed=0):
    """Logits of a model right 70% of the time but sure of itself almost always."""
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, classes, n)
    predicted = np.where(rng.rand(n) < 0.7, labels, (labels + 1) % classes)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), predicted] += 8.0
    return logits, labels


def test_ece_by_hand_on_two_bins_and_fifteen_by_default():
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    # 15 bins: 0.9 falls in (0.8667, 0.9333], 0.6 in (0.5333, 0.6].
    # Bin of 0.9: accuracy 0.5, gap 0.4; bin of 0.6: accuracy 1.0, gap 0.4.
    assert calibration.expected_calibration_error(probabilities, labels) == pytest.approx(0.4)
    table = calibration.reliability(probabilities, labels)
    assert len(table["count"]) == calibration.ECE_BINS == 15 and sum(table["count"]) == 4
    assert calibration.scores(probabilities, labels)["ece_bins"] == 15


def test_a_calibrated_predictor_has_ece_near_zero():
    rng = np.random.RandomState(1)
    confidence = rng.uniform(0.5, 1.0, 20000)
    labels = (rng.rand(20000) >= confidence).astype(int)  # class 0 right with p = confidence
    probabilities = np.stack([confidence, 1 - confidence], 1)
    assert calibration.expected_calibration_error(probabilities, labels) < 0.02


def test_nll_and_brier_match_sklearn_and_the_definition():
    logits, labels = _overconfident()
    probabilities = calibration.softmax(logits)
    scores = calibration.scores(probabilities, labels)
    assert scores["nll"] == pytest.approx(log_loss(labels, probabilities), rel=1e-6)
    assert scores["nll"] == pytest.approx(calibration.nll(logits, labels), rel=1e-6)
    onehot = np.eye(4)[labels]
    assert scores["brier"] == pytest.approx(np.mean(((probabilities - onehot) ** 2).sum(1)))


def test_temperature_fit_is_the_nll_minimum_and_keeps_the_argmax():
    logits, labels = _overconfident()
    t = calibration.fit_temperature(logits, labels)
    assert t > 1.5  # an overconfident model is softened
    best = calibration.nll(logits, labels, t)
    for other in (t * 0.9, t * 1.1, 1.0):
        assert best < calibration.nll(logits, labels, other)
    before = calibration.scores(calibration.softmax(logits), labels)
    after = calibration.scores(calibration.softmax(logits, t), labels)
    assert after["ece"] < before["ece"] and after["accuracy"] == before["accuracy"]


def test_too_few_images_to_fit_is_a_clear_error():
    logits, labels = _overconfident(n=calibration.MIN_CALIBRATION_IMAGES - 1)
    with pytest.raises(ValueError, match="at least 50 validation images; the validation "
                       "split has 49"):
        calibration.fit_temperature(logits, labels)


def test_abstain_threshold_is_the_highest_coverage_reaching_the_target():
    # Sorted by confidence: right, right, wrong, right, wrong.
    probabilities = np.array([[0.95, 0.05], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    labels = np.array([0, 0, 1, 0, 1])
    assert calibration.abstain_threshold(probabilities, labels, 1.0) == 0.9
    assert calibration.abstain_threshold(probabilities, labels, 0.75) == 0.7  # 3 of 4
    assert calibration.abstain_threshold(probabilities, labels, 0.5) == 0.6
    assert calibration.coverage_accuracy(probabilities, labels, 0.7) == {
        "threshold": 0.7, "coverage": 0.8, "accuracy_on_accepted": 0.75}


def test_tied_confidences_are_accepted_together_and_an_unreachable_target_is_an_error():
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4]])
    labels = np.array([0, 1, 0])
    with pytest.raises(ValueError, match="No threshold reaches 0.99 .* best is 0.6667"):
        calibration.abstain_threshold(probabilities, labels, 0.99)
    assert calibration.abstain_threshold(probabilities, labels, 0.6) == 0.6
