"""Multi-label metrics against scikit-learn, and the per-label threshold tuning."""

import numpy as np
import pytest
from sklearn import metrics as skm

from visiontrain.evaluation import multilabel


def _data(seed=0, n=200, c=4):
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, c)) < [0.5, 0.3, 0.1, 0.05]).astype(np.int64)
    scores = np.clip(truth * 0.35 + rng.random((n, c)) * 0.7, 0, 1)
    return scores, truth


def test_ap_f1_and_averages_match_scikit_learn():
    scores, truth = _data()
    thresholds = np.array([0.5, 0.4, 0.6, 0.5])
    report = multilabel.summarize(scores, truth, list("abcd"), thresholds)
    predicted = (scores >= thresholds).astype(int)
    np.testing.assert_allclose([r["ap"] for r in report["per_label"]],
                               skm.average_precision_score(truth, scores, average=None))
    np.testing.assert_allclose([r["f1"] for r in report["per_label"]],
                               skm.f1_score(truth, predicted, average=None, zero_division=0))
    assert report["micro_f1"] == pytest.approx(skm.f1_score(truth, predicted, average="micro"))
    assert report["macro_f1"] == pytest.approx(skm.f1_score(truth, predicted, average="macro",
                                                            zero_division=0))
    assert report["exact_match"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert report["cardinality_error"] == pytest.approx(
        np.mean(np.abs(predicted.sum(1) - truth.sum(1))))


def test_max_f1_thresholds_beat_every_other_cut_and_precision_targets_hold():
    scores, truth = _data(1)
    tuned = multilabel.tune_thresholds(scores, truth)
    for c in range(scores.shape[1]):
        best = skm.f1_score(truth[:, c], scores[:, c] >= tuned[c])
        others = [skm.f1_score(truth[:, c], scores[:, c] >= t, zero_division=0)
                  for t in np.unique(scores[:, c])]
        assert best == pytest.approx(max(others))
    precise = multilabel.tune_thresholds(scores, truth, target_precision=0.9)
    for c in range(scores.shape[1]):
        predicted = scores[:, c] >= precise[c]
        if predicted.any():
            assert skm.precision_score(truth[:, c], predicted) >= 0.9
    # Never reachable: every label predicted by nobody.
    never = multilabel.tune_thresholds(np.zeros((4, 1)) + 0.5, np.array([[1], [0], [1], [0]]),
                                       target_precision=0.9)
    assert never[0] > 0.5
