"""What the tools write for people to look at: evaluation images, dataset grids and tables."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from visiontrain.evaluation import render
from visiontrain.fileio import write_bytes_atomic
from visiontrain.pipelines import preprocess, schema

_TILE = 64
_GAP = 2


def write_images(report, mistakes, directory: str, image_size: int) -> dict[str, str]:
    """confusion_matrix.png and mistakes.png in `directory`; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = {"confusion_matrix": os.path.join(directory, "confusion_matrix.png")}
    pictures = {"confusion_matrix": render.labelled_confusion_image(
        np.array(report["confusion_matrix"]), [row["class"] for row in report["per_class"]])}
    if mistakes:
        images = np.stack([preprocess.preprocess_for_eval(m[1], image_size, 1.0).numpy()
                           for m in mistakes])
        pictures["mistakes"] = render.mistakes_grid(images, np.array([m[0] for m in mistakes]))
        paths["mistakes"] = os.path.join(directory, "mistakes.png")
    for name, picture in pictures.items():
        write_bytes_atomic(paths[name], tf.io.encode_png(picture).numpy())
    return paths


def count_table(loaded: dict) -> str:
    """A fixed-width table of records per class (rows) and split (columns) of a manifest."""
    splits = list(loaded["splits"])
    width = max(len(n) for n in loaded["labels"] + ["class"])
    lines = [f"{'class':<{width}}" + "".join(f"{s:>12}" for s in splits)]
    for name in loaded["labels"] + ["total"]:
        counts = [
            loaded["splits"][s]["num_records"] if name == "total"
            else loaded["splits"][s]["class_counts"].get(name, 0)
            for s in splits
        ]
        lines.append(f"{name:<{width}}" + "".join(f"{c:>12}" for c in counts))
    return "\n".join(lines)


def sample_grid(data_dir: str, loaded: dict, per_class: int) -> np.ndarray:
    """A uint8 RGB grid: one row per label, up to `per_class` tiles of sample images."""
    rows = [[] for _ in loaded["labels"]]
    files = [os.path.join(data_dir, s["file"]) for split in loaded["splits"].values()
             for s in split["shards"]]
    for record in tf.data.TFRecordDataset(files):
        features = schema.parse_example(record)
        row = rows[int(features[schema.LABEL])]
        if len(row) < per_class:
            image = preprocess.decode_rgb(features[schema.ENCODED])
            row.append(tf.cast(tf.image.resize_with_pad(image, _TILE, _TILE), tf.uint8).numpy())
        if all(len(r) >= per_class for r in rows):
            break
    step = _TILE + _GAP
    grid = np.full((len(rows) * step, per_class * step, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            grid[r * step : r * step + _TILE, c * step : c * step + _TILE] = tile
    return grid
