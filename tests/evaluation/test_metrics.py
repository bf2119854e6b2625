import numpy as np
import pytest
from sklearn import metrics as sk

from visiontrain.evaluation import metrics, render

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


def test_top_k_matches_sklearn_with_many_classes():
    rng = np.random.RandomState(0)
    probabilities = rng.dirichlet(np.ones(8), size=40)
    labels = rng.randint(0, 8, size=40)
    report = metrics.summarize(probabilities, labels, [])
    assert report["top5"] == pytest.approx(
        sk.top_k_accuracy_score(labels, probabilities, k=5, labels=range(8)))


def test_confusion_image_and_grid():
    image = render.confusion_image(np.array([[5, 0], [5, 0]]), cell=4)
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert tuple(image[1, 1]) == (8, 48, 107)  # class 0 row: all on the diagonal
    assert tuple(image[0, 0]) == (0, 160, 0) and tuple(image[4, 4]) == (200, 0, 0)
    grid = render.mistakes_grid(np.zeros((3, 4, 4, 3), np.uint8), np.array([1.0, 0.5, 0.25]))
    assert grid.shape == (2 * 9 + 2, 2 * 6 + 2, 3)
    with pytest.raises(ValueError, match="uint8"):
        render.tile(np.zeros((2, 4, 4), np.float32))


def test_labelled_confusion_image_names_rows_and_keeps_the_heat_map():
    matrix = np.array([[5, 0, 1], [2, 3, 0], [0, 0, 4]])
    heat = render.confusion_image(matrix, cell=12)
    image = render.labelled_confusion_image(matrix, ["ants", "bees", "wasps"], cell=12)
    rows, cols = np.nonzero(np.all(image == heat[0, 0], axis=-1))
    top, left = rows.min(), cols.min()
    assert top > 0 and left > 0, "margins for the axis names"
    np.testing.assert_array_equal(image[top:top + 36, left:left + 36], heat)
    for i in range(3):
        band = image[top + 12 * i: top + 12 * (i + 1), :left]
        assert (band < 128).any(), f"row {i} has no name drawn"
    assert (image[:top, left:left + 36] < 128).any(), "column indices drawn"


def test_labelled_confusion_image_refuses_a_label_count_mismatch_and_skips_huge_ones():
    with pytest.raises(ValueError, match="2 labels for a 3-class"):
        render.labelled_confusion_image(np.eye(3), ["a", "b"])
    many = np.eye(render.MAX_LABELLED_CLASSES + 1)
    names = [str(i) for i in range(len(many))]
    np.testing.assert_array_equal(render.labelled_confusion_image(many, names, cell=2),
                                  render.confusion_image(many, cell=2))
