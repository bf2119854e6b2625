"""Test helper: writes tiny shards and a manifest in the converter's format."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from visiontrain.pipelines import schema


def record_key(split: str, index: int) -> str:
    """The sha256 key that `write_split` gives record `index` of `split`."""
    return hashlib.sha256(f"{split}-{index}".encode()).hexdigest()


def split_keys(split: str, count: int) -> set[str]:
    """Every record key of a split of `count` records."""
    return {record_key(split, i) for i in range(count)}


def write_shard_dirs(tmp_path_factory, names, num_train, num_val, shard_counts=(1, 3)):
    """{num_shards: data_dir} of random 12x10 images, the same images in every dir."""
    dirs = {}
    for num_shards in shard_counts:
        rng = np.random.default_rng(0)
        out = str(tmp_path_factory.mktemp(f"shards{num_shards}"))
        train = (rng.integers(0, 256, (num_train, 12, 10, 3), np.uint8),
                 np.arange(num_train) % len(names))
        val = (rng.integers(0, 256, (num_val, 12, 10, 3), np.uint8),
               np.arange(num_val) % len(names))
        write_dataset(out, train, val, names, num_shards=num_shards)
        dirs[num_shards] = out
    return dirs


def epoch_keys(source, *, epoch, batch, image_size=8, num_pipelines=1, pipeline_id=0,
               start_record=0):
    """The record keys of one training epoch of `source` (a `datasets.Reader`), in order.

    Checks every batch's dtype and shape, and that the epoch has exactly the
    manifest's steps x batch records, minus those already consumed.
    """
    steps = source.steps_per_epoch(batch * num_pipelines, num_pipelines)
    dataset = source.train_dataset(
        epoch=epoch, batch_size=batch, records_per_epoch=steps * batch,
        start_record=start_record, num_pipelines=num_pipelines, pipeline_id=pipeline_id,
        with_keys=True,
    )
    keys = []
    for images, labels, batch_keys in dataset:
        assert images.dtype == tf.uint8 and images.shape[1:] == (image_size, image_size, 3)
        assert labels.dtype == tf.int32
        keys += [k.decode() for k in batch_keys.numpy()]
    assert len(keys) == steps * batch - start_record
    return keys


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
                    sha256=record_key(split, i),
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


RARE = range(5, 10)  # digits kept at one training image in ten, by `imbalanced_digits`


def imbalanced_digits(out_dir: str) -> str:
    """Digits 0-4 with all their training scans, 5-9 with every tenth; validation untouched."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None].repeat(3, -1)
    labels = digits.target
    train = np.arange(1500)
    rare = np.isin(labels[train], list(RARE))
    keep = train[~rare | (np.cumsum(rare) % 10 == 0)]
    write_dataset(out_dir, (images[keep], labels[keep]), (images[1500:], labels[1500:]),
                  [str(d) for d in range(10)], num_shards=2)
    return out_dir
