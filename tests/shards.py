"""Test helper: writes tiny shards and a manifest in the converter's format."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from visiontrain.pipelines import schema


def write_split(out_dir, split, images, labels, names, num_shards):
    """Writes `images` (uint8 [N,H,W,3]) round-robin into shards; returns the split entry."""
    shards = []
    for index in range(num_shards):
        name = schema.shard_name(split, index, num_shards)
        path = os.path.join(out_dir, name)
        count = 0
        with tf.io.TFRecordWriter(path) as writer:
            for i in range(index, len(images), num_shards):
                encoded = tf.io.encode_png(images[i]).numpy()
                example = schema.make_example(
                    encoded=encoded, image_format="png", label=int(labels[i]),
                    text=names[labels[i]], height=images.shape[1], width=images.shape[2],
                    filename=f"{split}/{i}.png",
                    sha256=hashlib.sha256(f"{split}-{i}".encode()).hexdigest(),
                )
                writer.write(example.SerializeToString())
                count += 1
        data = open(path, "rb").read()
        shards.append({"file": name, "records": count, "bytes": len(data),
                       "sha256": hashlib.sha256(data).hexdigest()})
    counts = {n: int(np.sum(labels == i)) for i, n in enumerate(names)}
    return {"num_records": len(images), "class_counts": counts, "shards": shards}


def write_dataset(out_dir, train, val, names, num_shards=2):
    """train/val are (images, labels) pairs. Writes shards, labels.json, manifest.json."""
    os.makedirs(out_dir, exist_ok=True)
    manifest = {
        "format_version": 1, "tool": "tests", "source": "synthetic", "labels": list(names),
        "num_classes": len(names), "skipped": [], "duplicates": {},
        "splits": {
            "train": write_split(out_dir, "train", *train, names, num_shards),
            "validation": write_split(out_dir, "validation", *val, names, num_shards),
        },
    }
    with open(os.path.join(out_dir, schema.LABELS_FILE), "w") as f:
        json.dump(list(names), f)
    with open(os.path.join(out_dir, schema.MANIFEST_FILE), "w") as f:
        json.dump(manifest, f)
    return manifest
