"""Where the readers' records come from: the `RecordSource` protocol and our shards.

A record source is a list of TFRecord files with known record counts, and a parser
that turns one file into feature dicts. Everything else (sharding over input
pipelines, the epoch's order, the remainder, decoding) is the source-independent
pipeline in `datasets.py`. The TFDS source lives in `tfds_reader.py`, so reading
our shards never imports tensorflow_datasets.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple, Protocol

import tensorflow as tf

from visiontrain.pipelines import manifest as manifest_lib
from visiontrain.pipelines import schema

# The feature keys every source's `read` yields.
IMAGE, LABEL, KEY = "image", "label", "key"
# A record's EXIF orientation, present only where the source recorded it; without
# it, preprocessing reads the image bytes as serving does.
ORIENTATION = "orientation"


class RecordFile(NamedTuple):
    """One TFRecord file of a split and the number of records it holds."""

    path: str
    records: int


class RecordSource(Protocol):
    """A split-by-split list of TFRecord files and how to parse them.

    `read(path)` yields, in file order, dicts of IMAGE (the still-encoded image
    bytes), LABEL (int32: the class index, or with `multi_label` the [C] multi-hot
    vector) and KEY (a string naming the record, for exactly-once checks), and
    ORIENTATION (int32 EXIF orientation) where the source recorded it.
    `jpeg_png_only` says that every IMAGE is a JPEG or PNG: the other formats cost
    every record of a reader time to handle (`preprocess.decode_rgb`).
    """

    labels: list[str]
    multi_label: bool
    jpeg_png_only: bool

    @property
    def identity(self) -> dict[str, str]:
        """Identifies the data a run is trained on: "sha256" of what a run reads and
        "described", the data in words for a refusal message."""

    def preflight(self) -> None:
        """Raises ValueError, with the fix, when the data cannot be read as it is."""

    def files(self, split: str) -> list[RecordFile]:
        """The split's files in their canonical order."""

    def read(self, path: tf.Tensor) -> tf.data.Dataset:
        """The feature dicts of one file (a scalar string tensor), in file order."""


def split_shards(data_dir: str, manifest: dict[str, Any], split: str) -> list[dict[str, Any]]:
    """The manifest's shard entries for `split`, with absolute paths under `path`."""
    splits = manifest.get("splits", {})
    if split not in splits:
        raise ValueError(
            f"The data in {data_dir} has no split {split!r}; it has {sorted(splits)}."
        )
    return [
        dict(shard, path=os.path.join(data_dir, shard["file"]))
        for shard in splits[split]["shards"]
    ]


def is_multi_label(manifest: dict[str, Any]) -> bool:
    """Whether a manifest's shards are multi-label (manifests before the task key are not)."""
    return manifest.get(schema.TASK, schema.SINGLE_LABEL) == schema.MULTI_LABEL


def make_record_parser(num_classes: int, multi_label: bool, with_orientation: bool = False):
    """serialized tf.Example -> {IMAGE, LABEL, KEY} (+ ORIENTATION `with_orientation`);
    a multi-label LABEL is multi-hot."""

    @tf.autograph.experimental.do_not_convert
    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        features = schema.parse_example(serialized, multi_label)
        label = features[schema.LABEL]
        label = schema.multi_hot(label, num_classes) if multi_label else tf.cast(label, tf.int32)
        record = {IMAGE: features[schema.ENCODED], LABEL: label, KEY: features[schema.SHA256]}
        if with_orientation:
            record[ORIENTATION] = tf.cast(features[schema.ORIENTATION], tf.int32)
        return record

    return parse


class ShardSource:
    """The shards and manifest that `visiontrain-data build` writes."""

    def __init__(self, data_dir: str, verify_sha256: bool = False):
        self.data_dir = data_dir
        self.verify_sha256 = verify_sha256
        self.manifest = manifest_lib.load_manifest(data_dir)
        self.labels = list(self.manifest["labels"])
        self.multi_label = is_multi_label(self.manifest)
        # Every version of the converter stores JPEG or PNG only (image_gate.prepare).
        self.jpeg_png_only = True
        with_orientation = self.manifest.get("format_version", 1) >= schema.ORIENTATION_SINCE
        self._parse = make_record_parser(len(self.labels), self.multi_label, with_orientation)

    @property
    def identity(self) -> dict[str, str]:
        """The shards' content (`manifest.content_digest`): rebuilt byte-identical shards
        are the same data wherever and whenever they were built. "manifest_sha256" is
        what runs bound before, to compare with their records."""
        return {"sha256": manifest_lib.content_digest(self.manifest),
                "described": manifest_lib.describe(self.manifest),
                "manifest_sha256": manifest_lib.manifest_digest(self.data_dir)}

    def preflight(self) -> None:
        """Checks every shard's record count (and sha256 when asked)."""
        manifest_lib.preflight(self.data_dir, ["train", "validation"], self.verify_sha256)

    def files(self, split: str) -> list[RecordFile]:
        """The split's shards in manifest order."""
        return [RecordFile(s["path"], int(s["records"]))
                for s in split_shards(self.data_dir, self.manifest, split)]

    def read(self, path: tf.Tensor) -> tf.data.Dataset:
        """The parsed records of one shard."""
        return tf.data.TFRecordDataset(path).map(self._parse)


def encoded_records(
    data_dir: str, split: str, batch_size: int, interleave: bool = False
) -> tf.data.Dataset:
    """(encoded image bytes [B], labels [B]) of a split, unprocessed; multi-label data
    gives [B, C] multi-hot labels.

    In file order; with `interleave`, one record of each shard in turn, so a short
    prefix samples every shard (shards are written round-robin over classes).
    """
    source = ShardSource(data_dir)
    files = [f.path for f in source.files(split)]
    parse_record = make_record_parser(len(source.labels), source.multi_label)

    def parse(serialized):
        record = parse_record(serialized)
        return record[IMAGE], record[LABEL]

    if interleave:
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=len(files), block_length=1
        )
    else:
        records = tf.data.TFRecordDataset(files)
    return records.map(parse).batch(batch_size)
