"""Reading the bytes of an encoded file with TensorFlow ops, in the serving graph.

Every read is a fixed number of bytes, zero-padded past the end, so a short or
hostile request never makes an op raise; callers check what they read. Each op in
a `Dataset.map` function costs microseconds per image, loops and branches far more,
so these are straight-line: a search is one `tf.strings.split`, not a walk.
"""

from __future__ import annotations

import tensorflow as tf


def bytes_at(data: tf.Tensor, pos: tf.Tensor, count: int) -> tf.Tensor:
    """`count` bytes of `data` from `pos` as int32 [count], zeros past either end."""
    pos = tf.clip_by_value(pos, 0, tf.strings.length(data))
    values = tf.io.decode_raw(tf.strings.substr(data, pos, count), tf.uint8, fixed_length=count)
    return tf.cast(values, tf.int32)


def find(data: tf.Tensor, needle: tf.Tensor | bytes) -> tf.Tensor:
    """Offset of the first `needle` in `data`, -1 when there is none."""
    parts = tf.strings.split(data, sep=needle, maxsplit=1)
    return tf.where(tf.size(parts) > 1, tf.reduce_sum(tf.strings.length(parts[:1])), -1)
