"""The tf.train.Example schema of our shards: the only place that names the feature keys.

The keys follow TF Model Garden's classification decoder
(official/vision/dataloaders/classification_input.py), so our shards also feed
Model Garden, and its shards feed us. A multi-label record keeps the same key and
stores all its class indices as an int64 list, which is what Model Garden's
multi-label decoder (`is_multilabel=True`) reads; its TEXT joins the class names
with TEXT_SEPARATOR. Which of the two a dataset holds is the manifest's TASK.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

ENCODED = "image/encoded"
FORMAT = "image/format"
LABEL = "image/class/label"
TEXT = "image/class/text"
HEIGHT = "image/height"
WIDTH = "image/width"
FILENAME = "image/filename"
SHA256 = "image/key/sha256"
# The EXIF orientation (1-8) the converter read from ENCODED (`exif`); 0 in a record
# without it, whose reader must read the bytes as serving does.
ORIENTATION = "image/orientation"

FEATURES = {
    ENCODED: tf.io.FixedLenFeature([], tf.string),
    FORMAT: tf.io.FixedLenFeature([], tf.string, default_value="jpeg"),
    LABEL: tf.io.FixedLenFeature([], tf.int64),
    TEXT: tf.io.FixedLenFeature([], tf.string, default_value=""),
    HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=0),
    WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=0),
    FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
    SHA256: tf.io.FixedLenFeature([], tf.string, default_value=""),
    ORIENTATION: tf.io.FixedLenFeature([], tf.int64, default_value=0),
}

# A multi-label record's label is a list of any length (MG: VarLenFeature).
MULTI_LABEL_FEATURES = {**FEATURES, LABEL: tf.io.VarLenFeature(tf.int64)}

TEXT_SEPARATOR = "|"
# The manifest key naming the task, and its values; a manifest without it is single-label.
TASK = "task"
SINGLE_LABEL = "single_label"
MULTI_LABEL = "multi_label"

# The manifest's "format_version": records of version 2 and later carry ORIENTATION.
FORMAT_VERSION = 2
ORIENTATION_SINCE = 2

LABELS_FILE = "labels.json"
MANIFEST_FILE = "manifest.json"
SHARD_PATTERN = "{split}-{index:05d}-of-{count:05d}.tfrecord"


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int | Sequence[int]) -> tf.train.Feature:
    values = [value] if isinstance(value, int) else list(value)
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def make_example(
    *,
    encoded: bytes,
    image_format: str,
    label: int | Sequence[int],
    text: str,
    height: int,
    width: int,
    filename: str,
    sha256: str,
    orientation: int = 1,
) -> tf.train.Example:
    """Builds one tf.train.Example with every key of the schema.

    Args:
      encoded: the encoded image bytes (JPEG or PNG).
      image_format: "jpeg" or "png", matching `encoded`.
      label: the integer class index (see labels.json), or every class index of a
        multi-label image.
      text: the class name (multi-label: the names joined by TEXT_SEPARATOR).
      height: decoded image height in pixels.
      width: decoded image width in pixels.
      filename: the source file, relative to the source root.
      sha256: hex digest of `encoded`, used for duplicate detection.
      orientation: the EXIF orientation of `encoded` (`exif.exif_orientation`);
        height and width are as shown, after it.

    Returns:
      The example, ready for `SerializeToString()`.
    """
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                ENCODED: _bytes(encoded),
                FORMAT: _bytes(image_format.encode()),
                LABEL: _int(label),
                TEXT: _bytes(text.encode()),
                HEIGHT: _int(height),
                WIDTH: _int(width),
                FILENAME: _bytes(filename.encode()),
                SHA256: _bytes(sha256.encode()),
                ORIENTATION: _int(orientation),
            }
        )
    )


def parse_example(serialized: tf.Tensor, multi_label: bool = False) -> dict[str, tf.Tensor]:
    """Parses one serialized example into a feature dict keyed by the schema keys.

    With `multi_label`, LABEL is the dense int64 vector of the record's class indices.
    """
    if not multi_label:
        return tf.io.parse_single_example(serialized, FEATURES)
    features = tf.io.parse_single_example(serialized, MULTI_LABEL_FEATURES)
    return {**features, LABEL: tf.sparse.to_dense(features[LABEL])}


def multi_hot(indices: tf.Tensor, num_classes: int) -> tf.Tensor:
    """The int32 [num_classes] multi-hot vector of a record's class indices."""
    hot = tf.one_hot(tf.cast(indices, tf.int32), num_classes, dtype=tf.int32)
    return tf.reduce_max(tf.concat([hot, tf.zeros([1, num_classes], tf.int32)], 0), axis=0)


def shard_name(split: str, index: int, count: int) -> str:
    """The file name of shard `index` of `count` for `split`."""
    return SHARD_PATTERN.format(split=split, index=index, count=count)
