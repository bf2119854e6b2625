"""The evaluation pictures: what they show (names, counts, scale, captions) and where."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ImageDraw

from visiontrain import calibration
from visiontrain.evaluation import render

GREEN, BLUE = (0, 160, 0), (8, 48, 107)


@pytest.fixture
def drawn(monkeypatch):
    """Every string the pictures write, in order."""
    texts = []
    original = ImageDraw.ImageDraw.text

    def record(self, xy, text, *args, **kwargs):
        texts.append(text)
        return original(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", record)
    return texts


def _diagonal(classes, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 5, (classes, classes)) + 40 * np.eye(classes, dtype=int)


def _heat_box(image):
    """(top, left, cell) of the heat map, found by its green diagonal outlines."""
    rows, cols = np.nonzero(np.all(image == GREEN, axis=-1))
    return rows.min(), cols.min(), rows.max() - rows.min() + 1


def test_confusion_image_colours_rows_and_outlines_the_diagonal():
    image = render.confusion_image(np.array([[5, 0], [5, 0]]), cell=4)
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert tuple(image[1, 1]) == BLUE  # class 0 row: all on the diagonal
    assert tuple(image[0, 0]) == GREEN and tuple(image[4, 4]) == (200, 0, 0)


def test_confusion_figure_names_both_axes_prints_each_cell_and_has_a_scale(drawn):
    matrix = np.array([[30, 2, 4], [5, 25, 1], [0, 3, 9]])
    names = ["ants", "bees", "wasps"]
    image = render.labelled_confusion_image(matrix, names)
    assert drawn.count("ants") == drawn.count("bees") == drawn.count("wasps") == 2  # both axes
    for (i, j), count in np.ndenumerate(matrix):
        assert str(count) in drawn
        assert f"{count / matrix[i].sum():.0%}" in drawn
    assert {"true", "predicted", "100%", "50%", "0%", "share of row"} <= set(drawn)
    assert f"{matrix.sum()} images, accuracy {np.trace(matrix) / matrix.sum():.3f}" in drawn

    top, left, span = _heat_box(image)
    cell = span // 3
    assert span == 3 * cell and cell >= 28, "cells big enough for two lines of digits"
    for i in range(3):
        band = image[top + i * cell + 2:top + (i + 1) * cell - 2]
        assert (band[:, :left] < 100).any(), f"row {i} not named"
        column = image[:top, left + i * cell + 2:left + (i + 1) * cell - 2]
        assert (column < 100).any(), f"column {i} not named"
        for j in range(3):
            inside = image[top + i * cell + 2:top + (i + 1) * cell - 2,
                           left + j * cell + 2:left + (j + 1) * cell - 2].reshape(-1, 3)
            assert len(np.unique(inside, axis=0)) > 2, f"cell {i},{j} has no number"
    # The scale starts dark blue (100%) at the top of the map and ends white at its bottom.
    right = image[top + 1, left + span:].astype(int)
    bar = np.flatnonzero(np.abs(right - BLUE).max(axis=-1) <= 2)
    assert bar.size, "no colour bar"
    assert (image[top + span - 2, left + span + bar[0]] >= 250).all()


def test_confusion_figure_grows_with_the_class_count():
    sizes = [render.labelled_confusion_image(_diagonal(c), [f"class {i}" for i in range(c)])
             .shape[:2] for c in (2, 5, 12)]
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(sizes, sizes[1:])), sizes
    # Readable, unlike the old 107x84 heat map: at least a 28 px cell per class.
    assert min(sizes[0]) > 2 * 28 + 40


def test_many_classes_drop_cell_numbers_then_names(drawn):
    count = render.MAX_ANNOTATED_CLASSES + 1
    names = [f"n{i}" for i in range(count)]
    render.labelled_confusion_image(_diagonal(count), names)
    assert drawn.count("n7") == 2 and "100%" in drawn
    assert "40%" not in drawn and not any(t.isdigit() for t in drawn)
    drawn.clear()
    huge = render.MAX_LABELLED_CLASSES + 1
    image = render.labelled_confusion_image(np.eye(huge), [f"n{i}" for i in range(huge)])
    assert "n7" not in drawn and f"({huge} classes in label order)" in drawn
    assert image.shape[0] >= 2 * huge


def test_confusion_figure_refuses_a_label_count_mismatch():
    with pytest.raises(ValueError, match="2 labels for a 3-class"):
        render.labelled_confusion_image(np.eye(3), ["a", "b"])


def test_long_names_are_cut_with_an_ellipsis(drawn):
    render.labelled_confusion_image(np.eye(2), ["x" * 200, "short"])
    cut = [t for t in drawn if t.startswith("xxx")]
    assert cut and all(t.endswith("…") and len(t) < 200 for t in cut)


def test_mistakes_carry_true_and_predicted_class_and_confidence(drawn):
    images = np.full((3, 32, 32, 3), 90, np.uint8)
    grid = render.mistakes_grid(images, np.array([0.93, 0.5, 0.25]), ["ants", "bees", "wasps"],
                                ["bees", "wasps", "ants"])
    assert drawn == ["true: ants", "pred: bees (93%)", "true: bees", "pred: wasps (50%)",
                     "true: wasps", "pred: ants (25%)"]
    # 32 px images are enlarged 4x (nearest neighbour) so their captions fit beneath.
    rows, cols = np.nonzero(np.all(grid == 90, axis=-1))
    assert cols.max() - cols.min() + 1 >= 2 * render.MIN_MISTAKE_WIDTH
    assert grid.shape[1] == 2 * (render.MIN_MISTAKE_WIDTH + 2) + 2
    # The first grid row holds the bars of the first two mistakes, as long as confidences.
    red = np.all(grid == (200, 0, 0), axis=-1).sum(axis=1)
    assert red.max() == round(0.93 * 128) + round(0.5 * 128)


def test_mistakes_refuse_mismatched_names():
    with pytest.raises(ValueError, match="2 mistake images but 2 confidences, 1 true"):
        render.mistakes_grid(np.zeros((2, 8, 8, 3), np.uint8), np.ones(2), ["a"], ["b", "c"])


def test_tile_refuses_anything_but_uint8_rgb():
    with pytest.raises(ValueError, match="uint8"):
        render.tile(np.zeros((2, 4, 4), np.float32))


def test_labelled_rows_name_every_row_beside_its_tiles(drawn):
    tiles = [np.full((16, 16, 3), v, np.uint8) for v in (10, 60, 110)]
    grid = render.labelled_rows([tiles[:2], tiles[2:], []], ["ants", "bees", "2"], 16, gap=2)
    assert drawn == ["0 ants", "1 bees", "2"]
    # tile's grid: 2 px gaps around 3 rows x 2 columns, the names in a margin on the left.
    assert grid.shape[0] == 3 * 18 + 2
    left = grid.shape[1] - (2 * 18 + 2)
    assert left > 0
    np.testing.assert_array_equal(grid[2:18, left + 2:left + 18], tiles[0])
    np.testing.assert_array_equal(grid[2:18, left + 20:left + 36], tiles[1])
    np.testing.assert_array_equal(grid[20:36, left + 2:left + 18], tiles[2])
    assert (grid[20:36, left + 20:left + 36] == 255).all(), "a short row ends in white"
    for r in range(3):
        assert (grid[2 + r * 18:r * 18 + 18, :left] < 128).any(), f"row {r} not named"
    with pytest.raises(ValueError, match="2 names for 3 rows"):
        render.labelled_rows([[], [], []], ["a", "b"], 16)


def test_reliability_diagram_draws_bars_gaps_and_title(drawn):
    rng = np.random.RandomState(0)
    probabilities = rng.dirichlet([0.3] * 4, 200)
    labels = rng.randint(0, 4, 200)
    table = calibration.reliability(probabilities, labels)
    picture = render.reliability_diagram(table, 0.25)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    pixels = picture.reshape(-1, 3)
    assert np.any(np.all(pixels == [8, 48, 107], axis=1))  # accuracy bars
    assert np.any(np.all(pixels == [200, 0, 0], axis=1))  # gaps to confidence
    assert drawn[0] == "ECE 0.2500 (15 equal-width bins), 200 images"
    assert "confidence" in drawn
