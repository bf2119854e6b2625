"""A prepared TFDS image-classification dataset as a `RecordSource`.

TFDS writes its splits as TFRecord files with known per-file counts, so the shard
pipeline reads them unchanged: same sharding, order, remainder and resume. Images
are parsed still encoded (`SkipDecoding`), so training uses the same fused
decode-and-crop as our shards, and evaluation the same `preprocess_for_eval` as
serving.
"""

from __future__ import annotations

import hashlib
import json

import tensorflow as tf
import tensorflow_datasets as tfds

from visiontrain.pipelines.record_sources import IMAGE, KEY, LABEL, RecordFile
from visiontrain.pipelines.tfds_source import feature_keys

PREFIX = "tfds:"
_SPLITS = ("train", "validation")


def tfds_spec(data_dir: str) -> str:
    """"NAME[/CONFIG]" from a `tfds:NAME[/CONFIG]` data_dir, or "" for a shard directory."""
    return data_dir[len(PREFIX):] if data_dir.startswith(PREFIX) else ""


class TfdsSource:
    """The train and validation files of a prepared TFDS dataset."""

    def __init__(self, spec: str, tfds_data_dir: str = ""):
        try:
            self.builder = tfds.builder(spec, data_dir=tfds_data_dir or None)
        except Exception as err:  # tfds raises several types for a bad name.
            raise ValueError(f"unknown TFDS dataset {spec!r} ({err}); check --data_dir") from err
        self.image_key, self.label_key = feature_keys(self.builder)
        self.labels = list(self.builder.info.features[self.label_key].names)
        # A ClassLabel feature holds one class per image.
        self.multi_label = False
        # TFDS keeps a file's bytes as they are, GIF and WebP included.
        self.jpeg_png_only = False

    def preflight(self) -> None:
        """Refuses an unprepared dataset, one without train and validation, or not TFRecord."""
        info = self.builder.info
        if not self.builder.is_prepared():
            raise ValueError(
                f"TFDS dataset {self.builder.name} is not prepared in {self.builder.data_dir}; "
                "run `tfds build NAME --data_dir=DIR` and pass --tfds_data_dir=DIR"
            )
        missing = [s for s in _SPLITS if s not in info.splits]
        if missing:
            raise ValueError(
                f"TFDS dataset {self.builder.name} lacks split(s) {missing}; it has "
                f"{sorted(info.splits)}. Convert it with visiontrain-data build, "
                "which splits validation off train."
            )
        if info.file_format != tfds.core.FileFormat.TFRECORD:
            raise ValueError(
                f"TFDS dataset {self.builder.name} is stored as {info.file_format.value}; "
                "rebuild it with `tfds build --file_format=tfrecord` or convert it with "
                "visiontrain-data build."
            )

    @property
    def identity(self) -> dict[str, str]:
        """sha256 of the dataset's name, version and per-file record counts, and those in
        words."""
        splits = {s: list(self.builder.info.splits[s].shard_lengths) for s in _SPLITS}
        ident = [self.builder.info.full_name, splits]
        records = ", ".join(f"{s} {sum(n)}" for s, n in splits.items())
        return {"sha256": hashlib.sha256(json.dumps(ident).encode()).hexdigest(),
                "described": f"TFDS {self.builder.info.full_name}, records: {records}"}

    def files(self, split: str) -> list[RecordFile]:
        """The split's files in TFDS's shard order."""
        info = self.builder.info.splits[split]
        return [RecordFile(str(path), int(count))
                for path, count in zip(info.filepaths, info.shard_lengths, strict=True)]

    def read(self, path: tf.Tensor) -> tf.data.Dataset:
        """One file's examples; the key is "FILE__INDEX", as TFDS's own `tfds_id`."""
        features = self.builder.info.features
        decoders = {self.image_key: tfds.decode.SkipDecoding()}

        @tf.autograph.experimental.do_not_convert
        def parse(index, serialized):
            example = features.deserialize_example(serialized, decoders=decoders)
            key = tf.strings.join([path, tf.strings.as_string(index)], separator="__")
            return {IMAGE: example[self.image_key],
                    LABEL: tf.cast(example[self.label_key], tf.int32), KEY: key}

        return tf.data.TFRecordDataset(path).enumerate().map(parse)
