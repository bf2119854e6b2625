"""Reading and checking the manifest that `visiontrain-data build` writes last.

The manifest lists every shard with its record count, byte size and sha256, so a
reader can tell a complete dataset from a half-copied or bit-rotted one before
training starts, and name the bad shard.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from visiontrain import fileio
from visiontrain.pipelines import image_gate, schema


def load_manifest(data_dir: str) -> dict[str, Any]:
    """Loads `data_dir/manifest.json`.

    Raises:
      ValueError: the file is missing, unreadable or not a manifest, with the fix.
    """
    path = os.path.join(data_dir, schema.MANIFEST_FILE)
    hint = "build shards with visiontrain-data build"
    if not tf.io.gfile.exists(path):
        raise ValueError(f"no {schema.MANIFEST_FILE} in {data_dir}; {hint}")
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            manifest = json.loads(f.read())
    except (OSError, ValueError, tf.errors.OpError) as err:
        raise ValueError(f"unreadable {path} ({err}); {hint}") from err
    if not isinstance(manifest, dict) or "splits" not in manifest or "labels" not in manifest:
        raise ValueError(f"{path} is not a visiontrain-data manifest; {hint}")
    return manifest


# Past this many, a message names the first classes and counts the rest: it stays one line.
NAMED_CLASSES = 20


def name_classes(names: Sequence[str], limit: int = NAMED_CLASSES) -> str:
    """`names` joined for a one-line message: the first `limit`, then "and N more"."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def untrained_classes(manifest: dict[str, Any]) -> list[str]:
    """The labels without a training record, in label order.

    Read from the train split's class counts; a manifest without them falls back on
    the `untrained_classes` its build recorded (none when it has neither).
    """
    counts = manifest["splits"].get("train", {}).get("class_counts")
    if counts is None:
        return list(manifest.get("untrained_classes", []))
    return [label for label in manifest["labels"] if not counts.get(label)]


def manifest_digest(data_dir: str) -> str:
    """sha256 of the manifest.json bytes, as runs before the content digest bound them."""
    return fileio.sha256_file(os.path.join(data_dir, schema.MANIFEST_FILE))


def content_digest(manifest: dict[str, Any]) -> str:
    """sha256 of what a run reads: the labels, the task, and each split's shards in order
    (their sha256 and record counts). Unlike the manifest's bytes it leaves out when and
    where the shards were built, so byte-identical shards rebuilt anywhere are the same data.
    """
    content = {"labels": manifest["labels"], "task": manifest.get(schema.TASK),
               "splits": {split: [[s["sha256"], s["records"]] for s in info["shards"]]
                          for split, info in sorted(manifest["splits"].items())}}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def describe(manifest: dict[str, Any]) -> str:
    """The data in words, for a message: classes, task and records per split."""
    records = ", ".join(f"{split} {info['num_records']}"
                        for split, info in sorted(manifest["splits"].items()))
    task = manifest.get(schema.TASK, schema.SINGLE_LABEL).replace("_", "-")
    return f"{len(manifest['labels'])} classes, {task}, records: {records}"


def _read_records(path: str, decode_images: bool) -> tuple[int, list[str]]:
    count, problems = 0, []
    try:
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            if decode_images:
                example = tf.train.Example.FromString(record)
                encoded = example.features.feature[schema.ENCODED].bytes_list.value[0]
                try:
                    image_gate.check_decodes(encoded)
                except image_gate.RejectedImage as err:
                    problems.append(f"record {count}: {err.reason}")
            count += 1
    except tf.errors.OpError as err:
        problems.append(f"unreadable or truncated after record {count}: {err.message}")
    return count, problems


def verify_split(
    data_dir: str,
    manifest: dict[str, Any],
    split: str,
    check_sha256: bool,
    decode_images: bool = False,
    *,
    count_records: bool = True,
) -> list[str]:
    """Checks every shard of `split` against the manifest.

    Args:
      data_dir: the directory holding the shards and manifest.json.
      manifest: `load_manifest(data_dir)`.
      split: "train" or "validation".
      check_sha256: hash every shard and compare.
      decode_images: decode every image with the gate (slow, thorough).
      count_records: read every record and compare the count (reads whole files).

    Returns:
      One line per problem, each starting with the shard's file name; empty if clean.
    """
    if split not in manifest["splits"]:
        return [f"split {split!r} not in manifest; it has {sorted(manifest['splits'])}"]
    problems = []
    for shard in manifest["splits"][split]["shards"]:
        name = shard["file"]
        path = os.path.join(data_dir, name)
        if not tf.io.gfile.exists(path):
            problems.append(f"{name}: missing")
            continue
        size = tf.io.gfile.stat(path).length
        if size != shard["bytes"]:
            problems.append(f"{name}: size {size} bytes, manifest says {shard['bytes']}")
        if check_sha256 and fileio.sha256_file(path) != shard["sha256"]:
            problems.append(f"{name}: sha256 mismatch")
        if count_records or decode_images:
            count, bad = _read_records(path, decode_images)
            problems.extend(f"{name}: {line}" for line in bad)
            if count != shard["records"]:
                problems.append(f"{name}: {count} records, manifest says {shard['records']}")
    return problems


def preflight(data_dir: str, splits: list[str], check_sha256: bool = False) -> dict[str, Any]:
    """The trainer's check before step 0: every shard exists with the manifest's size.

    With `check_sha256` it also hashes every shard and counts its records.

    Returns:
      The manifest.

    Raises:
      ValueError: listing every bad shard by name.
    """
    manifest = load_manifest(data_dir)
    problems = []
    for split in splits:
        problems += verify_split(
            data_dir, manifest, split, check_sha256, count_records=check_sha256
        )
    if problems:
        raise ValueError(
            f"{len(problems)} problem(s) with the shards in {data_dir}; rebuild with "
            "visiontrain-data build (it keeps good shards):\n  " + "\n  ".join(problems)
        )
    return manifest
