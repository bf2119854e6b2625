"""What a WebP header says, read with TensorFlow ops only (serving graph included).

TF's WebP decoder must be asked for the channels the file has: 3 refuses a file with
alpha, 4 refuses one without, and "any" (0) aborts the whole process on an animated
file (TF 2.21). libwebp's own rule decides, so the header is read the way it reads
it: a lossy "VP8 " chunk has no alpha; a lossless "VP8L" chunk says so in bit 28 of
its header; an extended "VP8X" file sets flag 0x10. Its flag 0x02 marks an
animation, which TF 2.21 decodes only when it has alpha and otherwise refuses for
any channel count: the converter's gate and the request checks refuse animations.
"""

from __future__ import annotations

import tensorflow as tf

from visiontrain.pipelines import byte_reads

_ALPHA = 0x10
ANIMATION = 0x02  # In the VP8X flags, byte 20 of the file.


def has_alpha(encoded: tf.Tensor) -> tf.Tensor:
    """True when TF must decode this WebP as RGBA."""
    header = byte_reads.bytes_at(encoded, 12, 13)  # chunk FourCC, size, first payload bytes
    chunk = tf.strings.substr(encoded, tf.minimum(12, tf.strings.length(encoded)), 4)
    lossless_alpha = tf.bitwise.bitwise_and(tf.bitwise.right_shift(header[12], 4), 1) > 0
    extended = tf.bitwise.bitwise_and(header[8], _ALPHA) > 0
    return (tf.equal(chunk, b"VP8L") & lossless_alpha) | (tf.equal(chunk, b"VP8X") & extended)
