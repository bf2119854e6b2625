import numpy as np
import pytest
from sklearn import metrics as sk

from visiontrain.evaluation import metrics

NAMES = ["cat", "dog", "eel", "fox"]


def _fixed_predictions():
    rng = np.random.RandomState(3)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 0, 1, 2])
    logits = rng.normal(size=(len(labels), 4))
    logits[np.arange(len(labels)), labels] += np.where(np.arange(len(labels)) % 3, 2.0, -1.0)
    logits[:, 3] -= 5.0  # class 3 is never predicted: precision undefined -> 0 like sklearn
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probabilities, labels


def test_summarize_matches_sklearn():
    probabilities, labels = _fixed_predictions()
    predicted = probabilities.argmax(1)
    report = metrics.summarize(probabilities, labels, NAMES)
    np.testing.assert_array_equal(report["confusion_matrix"],
                                  sk.confusion_matrix(labels, predicted, labels=range(4)))
    p, r, f, s = sk.precision_recall_fscore_support(labels, predicted, labels=range(4),
                                                    zero_division=0)
    for i, row in enumerate(report["per_class"]):
        assert row["class"] == NAMES[i]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p[i], r[i], f[i]))
        assert row["support"] == s[i]
    for average in ("macro", "weighted"):
        expected = sk.precision_recall_fscore_support(labels, predicted, average=average,
                                                      zero_division=0)[:3]
        got = report[f"{average}_avg"]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(expected)
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert report["top5"] == 1.0
    assert report["loss"] == pytest.approx(sk.log_loss(labels, probabilities, labels=range(4)))
    text = metrics.format_report(report)
    assert "weighted avg" in text and "fox" in text
    calib = report["calibration"]
    assert calib["nll"] == pytest.approx(report["loss"]) and calib["ece_bins"] == 15
    assert sum(calib["reliability"]["count"]) == len(labels)
    assert f"ECE {calib['ece']:.4f} (15 equal-width confidence bins)" in text


def test_top_k_matches_sklearn_with_many_classes():
    rng = np.random.RandomState(0)
    probabilities = rng.dirichlet(np.ones(8), size=40)
    labels = rng.randint(0, 8, size=40)
    report = metrics.summarize(probabilities, labels, [])
    assert report["top5"] == pytest.approx(
        sk.top_k_accuracy_score(labels, probabilities, k=5, labels=range(8)))


def test_recall_is_shown_against_each_class_training_share():
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    report = metrics.summarize(probabilities, np.array([0, 0, 1, 1]), ["common", "rare"])
    assert "train share" not in metrics.format_report(report)
    metrics.add_train_frequency(report, {"common": 90, "rare": 10})
    assert [(r["train_count"], r["train_share"]) for r in report["per_class"]] == [
        (90, 0.9), (10, 0.1)]
    lines = metrics.format_report(report).splitlines()
    assert lines[0].endswith("train share")
    assert lines[2].split() == ["rare", "1.0000", "0.5000", "0.6667", "2", "0.1000"]
