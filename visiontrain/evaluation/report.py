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


def draw_pictures(report, mistakes, image_size: int) -> dict[str, np.ndarray]:
    """The confusion matrix, the reliability diagram and (if there are any) the mistakes,
    as uint8 RGB pictures."""
    names = [row["class"] for row in report["per_class"]]
    pictures = {
        "confusion_matrix": render.labelled_confusion_image(
            np.array(report["confusion_matrix"]), names),
        "reliability": render.reliability_diagram(
            report["calibration"]["reliability"], report["calibration"]["ece"]),
    }
    if mistakes:
        images = np.stack([preprocess.preprocess_for_eval(m[1], image_size, 1.0).numpy()
                           for m in mistakes])
        pictures["mistakes"] = render.mistakes_grid(
            images, np.array([m[0] for m in mistakes]), [names[m[2]] for m in mistakes],
            [names[m[3]] for m in mistakes])
    return pictures


def write_images(pictures: dict[str, np.ndarray], directory: str) -> dict[str, str]:
    """Each picture as NAME.png in `directory`; returns their paths by name."""
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, f"{name}.png") for name in pictures}
    for name, picture in pictures.items():
        write_bytes_atomic(paths[name], tf.io.encode_png(picture).numpy())
    return paths


# Past this many classes the table shows the smallest and largest (a 21,841-class set
# would print a 21,843-line table); manifest.json keeps every count.
TABLE_CLASSES = 40


def count_table(loaded: dict) -> str:
    """A fixed-width table of records per class (rows) and split (columns) of a manifest;
    with more than TABLE_CLASSES classes, the smallest and largest by training count."""
    splits = list(loaded["splits"])
    names = list(loaded["labels"])
    omitted = max(0, len(names) - TABLE_CLASSES)
    if omitted:
        counts = loaded["splits"][splits[0]]["class_counts"]
        ranked = sorted(names, key=lambda n: (counts.get(n, 0), n))
        names = ranked[: TABLE_CLASSES // 2] + ranked[-TABLE_CLASSES // 2:]
    width = max(len(n) for n in names + ["class"])
    lines = [f"{'class':<{width}}" + "".join(f"{s:>12}" for s in splits)]
    if omitted:
        lines[0] += f"   ({TABLE_CLASSES // 2} smallest and largest by {splits[0]} count; " \
                    f"{omitted} more in manifest.json)"
    for name in names + ["total"]:
        counts = [
            loaded["splits"][s]["num_records"] if name == "total"
            else loaded["splits"][s]["class_counts"].get(name, 0)
            for s in splits
        ]
        lines.append(f"{name:<{width}}" + "".join(f"{c:>12}" for c in counts))
    return "\n".join(lines)


def sample_grid(data_dir: str, loaded: dict, per_class: int) -> np.ndarray:
    """A uint8 RGB grid: one row per label, named on its left, up to `per_class` samples
    (a multi-label image may appear in the row of each of its labels)."""
    rows = [[] for _ in loaded["labels"]]
    files = [os.path.join(data_dir, s["file"]) for split in loaded["splits"].values()
             for s in split["shards"]]
    multi_label = loaded.get(schema.TASK) == schema.MULTI_LABEL
    for record in tf.data.TFRecordDataset(files):
        features = schema.parse_example(record, multi_label)
        for label in np.atleast_1d(features[schema.LABEL].numpy()):
            row = rows[int(label)]
            if len(row) < per_class:
                image = preprocess.decode_rgb(features[schema.ENCODED])
                row.append(tf.cast(tf.image.resize_with_pad(image, _TILE, _TILE),
                                   tf.uint8).numpy())
        if all(len(r) >= per_class for r in rows):
            break
    return render.labelled_rows(rows, loaded["labels"], _TILE, _GAP)
