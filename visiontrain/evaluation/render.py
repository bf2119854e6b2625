"""Evaluation pictures readable at a glance, as uint8 RGB arrays (numpy and Pillow).

Pillow's bundled scalable font (FreeType) writes the text, so no plotting library is
needed: the confusion matrix names the classes on both axes and prints each cell's
count and share of its row beside a colour scale; each mistake carries its true and
predicted class; the inspect grid names its rows.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_WHITE = np.array([255.0, 255, 255])
_BLUE = np.array([8.0, 48, 107])
_GREEN, _RED = (0, 160, 0), (200, 0, 0)
FONT_SIZE = 13
# Up to this many classes every cell prints its count and row share.
MAX_ANNOTATED_CLASSES = 30
# Up to this many classes both axes are named; beyond, the heat map keeps only its scale.
MAX_LABELLED_CLASSES = 100
# Longer class names are cut with an ellipsis at this width (pixels at FONT_SIZE).
_MAX_NAME_PX = 160


def _font(size: int = FONT_SIZE) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _shorten(text: str, width: float, font) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _line_height(font) -> int:
    return int(font.getbbox("Ag")[3]) + 3


def _row_shares(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)


def confusion_image(matrix: np.ndarray, cell: int = 16) -> np.ndarray:
    """uint8 [C*cell, C*cell, 3] heat map of a row-normalised confusion matrix.

    White is 0, dark blue is the whole row; the diagonal is outlined green when
    correct predictions dominate its row and red otherwise, so a glance finds the
    classes that are mostly confused.
    """
    share = _row_shares(matrix)
    colors = _WHITE + share[..., None] * (_BLUE - _WHITE)
    image = np.repeat(np.repeat(colors, cell, axis=0), cell, axis=1)
    for i in range(len(share)):
        edge = _GREEN if share[i, i] >= 0.5 else _RED
        y = slice(i * cell, (i + 1) * cell)
        image[y, i * cell] = image[y, (i + 1) * cell - 1] = edge
        image[i * cell, y] = image[(i + 1) * cell - 1, y] = edge
    return np.round(image).astype(np.uint8)


def _vertical(text: str, font) -> Image.Image:
    """`text` written bottom-to-top on white, cropped to its ink box plus a pixel."""
    _, _, right, bottom = font.getbbox(text)
    strip = Image.new("RGB", (int(right) + 2, int(bottom) + 2), "white")
    ImageDraw.Draw(strip).text((1, 1), text, fill="black", font=font)
    return strip.rotate(90, expand=True)


def _cell_size(matrix: np.ndarray, font) -> int:
    """Square cells wide enough for the largest count and "100%" on two lines."""
    widest = max(font.getlength(str(int(np.max(matrix, initial=0)))), font.getlength("100%"))
    return int(max(widest + 8, 2 * _line_height(font) + 6))


def labelled_confusion_image(matrix: np.ndarray, labels: list[str]) -> np.ndarray:
    """The confusion matrix as a figure: rows are true classes, columns predictions.

    Both axes carry the class names (columns written upwards). Up to
    MAX_ANNOTATED_CLASSES classes each cell prints its count and its share of the row;
    a colour bar on the right maps shade to share. The title gives the image count and
    accuracy. Beyond MAX_LABELLED_CLASSES names, the axes say "classes in label order".

    Raises:
      ValueError: If `labels` does not have one name per row.
    """
    matrix = np.asarray(matrix)
    classes = len(matrix)
    if len(labels) != classes:
        raise ValueError(f"{len(labels)} labels for a {classes}-class confusion matrix.")
    font = _font()
    line = _line_height(font)
    annotate = classes <= MAX_ANNOTATED_CLASSES
    named = classes <= MAX_LABELLED_CLASSES
    if annotate:
        cell = _cell_size(matrix, font)
    else:
        cell = max(2, min(line, 1200 // max(classes, 1)))
    name_font = font if cell >= line or not named else _font(max(cell - 3, 6))
    names = [_shorten(str(n), _MAX_NAME_PX, name_font) for n in labels]
    name_width = int(max((name_font.getlength(n) for n in names), default=0)) + 6 if named else 0
    heat = Image.fromarray(confusion_image(matrix, cell))
    side = classes * cell

    # Margins: axis title and names on the left and top, the colour scale on the right.
    left = line + 6 + name_width
    top = 2 * line + 6 + name_width
    bar_x = left + side + 12
    bar_label = int(font.getlength("100%")) + 4
    width = max(bar_x + 14 + 4 + bar_label + line + 6, left + int(font.getlength("predicted")))
    height = top + max(side, 5 * line) + 8
    canvas = Image.new("RGB", (width, height), "white")
    canvas.paste(heat, (left, top))
    draw = ImageDraw.Draw(canvas)

    total = int(matrix.sum())
    accuracy = np.trace(matrix) / total if total else 0.0
    draw.text((4, 2), f"{total} images, accuracy {accuracy:.3f}", fill="black", font=font)
    draw.text((left, line + 4), "predicted", fill="black", font=font)
    canvas.paste(_vertical("true", font), (2, top))
    if named:
        for i, name in enumerate(names):
            y = top + i * cell + (cell - _line_height(name_font)) // 2
            draw.text((line + 6, y), name, fill="black", font=name_font)
            label = _vertical(name, name_font)
            canvas.paste(label, (left + i * cell + (cell - label.width) // 2,
                                 top - 2 - label.height))
    else:
        draw.text((left + int(font.getlength("predicted ")), line + 4),
                  f"({classes} classes in label order)", fill="black", font=font)

    if annotate:
        share = _row_shares(matrix)
        for (i, j), count in np.ndenumerate(matrix):
            color = "white" if share[i, j] > 0.5 else "black"
            for k, text in enumerate((str(int(count)), f"{share[i, j]:.0%}")):
                x = left + j * cell + (cell - font.getlength(text)) / 2
                y = top + i * cell + (cell - 2 * line) // 2 + k * line
                draw.text((x, y), text, fill=color, font=font)

    # The scale: shade of a cell against its share of the true class's images.
    bar_height = max(side, 5 * line)
    ramp = np.linspace(1.0, 0.0, bar_height)[:, None, None]
    bar = np.round(_WHITE + ramp * (_BLUE - _WHITE)).astype(np.uint8)
    canvas.paste(Image.fromarray(np.repeat(bar, 14, axis=1)), (bar_x, top))
    draw.rectangle((bar_x, top, bar_x + 13, top + bar_height - 1), outline="black")
    for value in (1.0, 0.5, 0.0):
        y = top + (1.0 - value) * (bar_height - 1) - line / 2
        y = min(max(y, top), top + bar_height - line)
        draw.text((bar_x + 18, y), f"{value:.0%}", fill="black", font=font)
    canvas.paste(_vertical("share of row", font), (bar_x + 18 + bar_label, top))
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


# Small images are enlarged (nearest neighbour) to this width so captions fit under them.
MIN_MISTAKE_WIDTH = 128


def mistakes_grid(images: np.ndarray, confidences: np.ndarray, true_names: list[str],
                  predicted_names: list[str], band: int = 3) -> np.ndarray:
    """The most confident mistakes, each captioned "true: A" / "pred: B (93%)".

    The brackets keep a class named "1" at 74% from reading as "174%".

    A red bar under each caption is as long as the confidence of the wrong prediction.
    """
    images = np.asarray(images, np.uint8)
    count, height, width, _ = images.shape
    if not len(confidences) == len(true_names) == len(predicted_names) == count:
        raise ValueError(f"{count} mistake images but {len(confidences)} confidences, "
                         f"{len(true_names)} true and {len(predicted_names)} predicted names.")
    scale = -(-MIN_MISTAKE_WIDTH // width)
    images = np.repeat(np.repeat(images, scale, axis=1), scale, axis=2)
    height, width = height * scale, width * scale
    font = _font(12)
    line = _line_height(font)
    framed = np.full((count, height + 2 * line + 4 + band, width, 3), 255, np.uint8)
    for index, image in enumerate(images):
        caption = Image.new("RGB", (width, 2 * line + 4), "white")
        draw = ImageDraw.Draw(caption)
        true = _shorten(f"true: {true_names[index]}", width - 4, font)
        confidence = f" ({confidences[index]:.0%})"
        predicted = _shorten(f"pred: {predicted_names[index]}", width - 8
                             - font.getlength(confidence), font)
        draw.text((2, 1), true, fill=_GREEN, font=font)
        draw.text((2, line + 2), predicted + confidence, fill=_RED, font=font)
        framed[index, :height] = image
        framed[index, height:height + 2 * line + 4] = np.asarray(caption)
        framed[index, -band:, : max(int(round(confidences[index] * width)), 1)] = _RED
    return tile(framed)


def labelled_rows(rows: list[list[np.ndarray]], names: list[str], size: int,
                  gap: int = 2) -> np.ndarray:
    """Rows of uint8 [size, size, 3] tiles (`tile`'s grid), each named on its left."""
    font = _font()
    names = [_shorten(n if n == str(i) else f"{i} {n}", _MAX_NAME_PX, font)
             for i, n in enumerate(names)]
    if len(names) != len(rows):
        raise ValueError(f"{len(names)} names for {len(rows)} rows of samples.")
    columns = max([len(r) for r in rows] + [1])
    # Rows shorter than the longest (classes with few samples) end in white.
    blank = np.full((size, size, 3), 255, np.uint8)
    cells = [row[c] if c < len(row) else blank for row in rows for c in range(columns)]
    grid = tile(np.stack(cells or [blank]).astype(np.uint8), columns, gap)
    left = int(max((font.getlength(n) for n in names), default=0)) + 8
    canvas = Image.new("RGB", (left + grid.shape[1], grid.shape[0]), "white")
    canvas.paste(Image.fromarray(grid), (left, 0))
    draw = ImageDraw.Draw(canvas)
    for r, name in enumerate(names):
        y = gap + r * (size + gap) + (size - _line_height(font)) // 2
        draw.text((4, y), name, fill="black", font=font)
    return np.asarray(canvas, np.uint8)


def bar_chart(values: np.ndarray, names: list[str], title: str, width: int = 240) -> np.ndarray:
    """One horizontal bar per name for values in [0, 1] (e.g. per-label AP), each bar
    printed with its value, under `title`."""
    font = _font()
    names = [_shorten(n, _MAX_NAME_PX, font) for n in names]
    line = _line_height(font) + 4
    left = int(max((font.getlength(n) for n in names), default=0)) + 8
    canvas = Image.new("RGB", (left + width + 56, line * (len(names) + 1) + 4), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill="black", font=font)
    for i, (name, value) in enumerate(zip(names, np.clip(values, 0.0, 1.0))):
        y = line * (i + 1) + 2
        draw.text((4, y), name, fill="black", font=font)
        draw.rectangle([left, y + 2, left + max(1, int(round(value * width))), y + line - 4],
                       fill=tuple(int(v) for v in _BLUE))
        draw.text((left + width + 6, y), f"{value:.3f}", fill="black", font=font)
    return np.asarray(canvas, np.uint8)


def reliability_diagram(table: dict[str, list], ece: float, side: int = 240) -> np.ndarray:
    """uint8 RGB reliability diagram of `calibration.reliability`'s equal-width bins.

    Each non-empty bin is a blue bar as high as its accuracy; a red band spans the gap
    to its mean confidence (above the bar: overconfident; inside it: underconfident).
    The grey diagonal is perfect calibration; the strip below shows each bin's share of
    the images, so a large gap over a nearly empty bin reads as what it is.
    """
    font = _font()
    line = _line_height(font)
    count = np.asarray(table["count"], np.float64)
    bins = len(count)
    left, top, strip = line + int(font.getlength("1.0")) + 10, line + 6, 3 * line
    width = left + side + 10
    height = top + side + 4 + strip + 2 * line + 8
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), f"ECE {ece:.4f} ({bins} equal-width bins), {int(count.sum())} images",
              fill="black", font=font)
    bottom = top + side - 1
    share = count / max(count.sum(), 1)
    for i in range(bins):
        x0, x1 = left + i * side // bins, left + (i + 1) * side // bins - 1
        if count[i]:
            accuracy = bottom - table["accuracy"][i] * (side - 1)
            confidence = bottom - table["confidence"][i] * (side - 1)
            draw.rectangle((x0, accuracy, x1, bottom), fill=tuple(_BLUE.astype(int)),
                           outline="white")
            draw.rectangle((x0 + 1, min(accuracy, confidence), x1 - 1, max(accuracy, confidence)),
                           outline=_RED)
        bar_top = top + side + 4 + strip * (1 - share[i])
        draw.rectangle((x0, bar_top, x1, top + side + 4 + strip), fill=(150, 150, 150))
    draw.line((left, bottom, left + side - 1, top), fill=(128, 128, 128), width=1)
    draw.rectangle((left, top, left + side - 1, bottom), outline="black")
    for value in (0.0, 0.5, 1.0):
        draw.text((left - font.getlength(f"{value:.1f}") - 3, bottom - value * (side - 1)
                   - line / 2), f"{value:.1f}", fill="black", font=font)
        text_x = left + value * (side - 1) - font.getlength(f"{value:.1f}") / 2
        draw.text((min(max(text_x, left), width - 20), top + side + 6 + strip),
                  f"{value:.1f}", fill="black", font=font)
    draw.text((left + side // 2 - font.getlength("confidence") / 2, height - line - 2),
              "confidence", fill="black", font=font)
    canvas.paste(_vertical("accuracy", font), (2, top + side // 2 - 30))
    return np.asarray(canvas, np.uint8)
