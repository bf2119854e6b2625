"""Evaluation images drawn with numpy alone (no plotting library), as uint8 RGB."""

from __future__ import annotations

import numpy as np


def confusion_image(matrix: np.ndarray, cell: int = 16) -> np.ndarray:
    """uint8 [C*cell, C*cell, 3] heat map of a row-normalised confusion matrix.

    White is 0, dark blue is the whole row; the diagonal is outlined green when
    correct predictions dominate its row and red otherwise, so a glance finds the
    classes that are mostly confused.
    """
    matrix = np.asarray(matrix, np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    white, blue = np.array([255.0, 255, 255]), np.array([8.0, 48, 107])
    colors = white + share[..., None] * (blue - white)
    image = np.repeat(np.repeat(colors, cell, axis=0), cell, axis=1)
    for i in range(len(matrix)):
        edge = [0, 160, 0] if share[i, i] >= 0.5 else [200, 0, 0]
        y = slice(i * cell, (i + 1) * cell)
        image[y, i * cell] = image[y, (i + 1) * cell - 1] = edge
        image[i * cell, y] = image[(i + 1) * cell - 1, y] = edge
    return np.round(image).astype(np.uint8)


# Beyond this many classes names no longer fit beside a readable heat map.
MAX_LABELLED_CLASSES = 50


def labelled_confusion_image(
    matrix: np.ndarray, labels: list[str], cell: int = 16
) -> np.ndarray:
    """`confusion_image` with its axes named: rows are true classes, columns predictions.

    Rows carry "index name" on the left (the name alone when it is the index),
    columns the class index on top (names would overlap there). With more than
    MAX_LABELLED_CLASSES classes the plain heat map is returned.
    """
    heat = confusion_image(matrix, cell)
    if len(labels) != len(matrix):
        raise ValueError(f"{len(labels)} labels for a {len(matrix)}-class confusion matrix.")
    if len(labels) > MAX_LABELLED_CLASSES:
        return heat
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    row_names = [name if name == str(i) else f"{i} {name}" for i, name in enumerate(labels)]
    text_height = max(measure.textbbox((0, 0), "0g")[3], 8)
    left = int(max(measure.textlength(t, font=font) for t in row_names + ["true"])) + 8
    top = 2 * text_height + 8
    canvas = Image.new("RGB", (left + heat.shape[1] + 4, top + heat.shape[0] + 4), "white")
    canvas.paste(Image.fromarray(heat), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.text((left, 2), "predicted", fill="black", font=font)
    draw.text((4, top - text_height - 2), "true", fill="black", font=font)
    step = max(1, int(np.ceil(measure.textlength(str(len(labels) - 1), font=font) + 2) / cell))
    for i in range(0, len(labels), step):
        draw.text((left + i * cell + 1, top - text_height - 2), str(i), fill="black", font=font)
    for i, name in enumerate(row_names):
        y = top + i * cell + (cell - text_height) // 2
        draw.text((4, y), name, fill="black", font=font)
    return np.asarray(canvas, np.uint8)


def tile(images: np.ndarray, columns: int = 0, pad: int = 2) -> np.ndarray:
    """uint8 [N, H, W, 3] laid out in a grid with `pad` grey pixels between cells."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"tile needs uint8 [N, H, W, 3] images, got {images.dtype} "
                         f"{list(images.shape)}.")
    count, height, width, _ = images.shape
    columns = columns or int(np.ceil(np.sqrt(max(count, 1))))
    rows = max(int(np.ceil(count / columns)), 1)
    grid = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, 3), 128, np.uint8)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        y, x = pad + r * (height + pad), pad + c * (width + pad)
        grid[y:y + height, x:x + width] = image
    return grid


def mistakes_grid(images: np.ndarray, confidences: np.ndarray, band: int = 3) -> np.ndarray:
    """The most confident mistakes, each with a red bar under it as long as its confidence."""
    images = np.asarray(images, np.uint8)
    count, height, width, _ = images.shape
    framed = np.full((count, height + band, width, 3), 255, np.uint8)
    framed[:, :height] = images
    for index, confidence in enumerate(confidences):
        framed[index, height:, : max(int(round(confidence * width)), 1)] = [200, 0, 0]
    return tile(framed)
