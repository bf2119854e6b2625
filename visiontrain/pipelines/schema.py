"""The tf.train.Example schema of our shards: the only place that names the feature keys.

The keys follow TF Model Garden's classification decoder
(official/vision/dataloaders/classification_input.py), so our shards also feed
Model Garden, and its shards feed us.
"""

from __future__ import annotations

import tensorflow as tf

ENCODED = "image/encoded"
FORMAT = "image/format"
LABEL = "image/class/label"
TEXT = "image/class/text"
HEIGHT = "image/height"
WIDTH = "image/width"
FILENAME = "image/filename"
SHA256 = "image/key/sha256"

FEATURES = {
    ENCODED: tf.io.FixedLenFeature([], tf.string),
    FORMAT: tf.io.FixedLenFeature([], tf.string, default_value="jpeg"),
    LABEL: tf.io.FixedLenFeature([], tf.int64),
    TEXT: tf.io.FixedLenFeature([], tf.string, default_value=""),
    HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=0),
    WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=0),
    FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
    SHA256: tf.io.FixedLenFeature([], tf.string, default_value=""),
}

LABELS_FILE = "labels.json"
MANIFEST_FILE = "manifest.json"
SHARD_PATTERN = "{split}-{index:05d}-of-{count:05d}.tfrecord"


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def make_example(
    *,
    encoded: bytes,
    image_format: str,
    label: int,
    text: str,
    height: int,
    width: int,
    filename: str,
    sha256: str,
) -> tf.train.Example:
    """Builds one tf.train.Example with every key of the schema.

    Args:
      encoded: the encoded image bytes (JPEG or PNG).
      image_format: "jpeg" or "png", matching `encoded`.
      label: the integer class index (see labels.json).
      text: the class name.
      height: decoded image height in pixels.
      width: decoded image width in pixels.
      filename: the source file, relative to the source root.
      sha256: hex digest of `encoded`, used for duplicate detection.

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
            }
        )
    )


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses one serialized example into a feature dict keyed by the schema keys."""
    return tf.io.parse_single_example(serialized, FEATURES)


def shard_name(split: str, index: int, count: int) -> str:
    """The file name of shard `index` of `count` for `split`."""
    return SHARD_PATTERN.format(split=split, index=index, count=count)
