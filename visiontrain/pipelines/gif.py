"""GIF transparency over white, with TensorFlow ops only.

TF's GIF decoder gives a transparent pixel as black and reports no alpha, so a
transparent GIF would reach the model unlike the same picture as a PNG (composited
over white, `preprocess._decode_png`) and unlike what a viewer shows. GIF
transparency is one palette index per frame, named in the Graphic Control
Extension (21 F9 04 flags delay delay index 00) written right before the frame;
`opaque_over_white` rewrites that index's palette entry to white and clears the
flag, so the decoder itself paints those pixels white. Only the first frame is
decoded (`expand_animations=False`), so only its extension and colour table are
touched. An extension that is not directly followed by the first image descriptor
(no writer we know of does that) leaves the GIF as it is, black pixels included,
in training and serving alike.
"""

from __future__ import annotations

import tensorflow as tf

from visiontrain.pipelines import byte_reads

_HEADER = 13  # Signature, version and logical screen descriptor.
_CONTROL = b"\x21\xf9\x04"
_ALL_BYTES = bytes(range(256))  # Byte v is _ALL_BYTES[v]: how a computed byte is written.


def _table_bytes(packed: tf.Tensor) -> tf.Tensor:
    """The size of the colour table a packed field announces (bit 7 set), else 0."""
    present = tf.bitwise.bitwise_and(packed, 0x80) > 0
    return tf.where(present, 3 * tf.bitwise.left_shift(2, tf.bitwise.bitwise_and(packed, 7)), 0)


def _span(data: tf.Tensor, begin: tf.Tensor, end: tf.Tensor) -> tf.Tensor:
    """data[begin:end], clamped to the data."""
    begin = tf.clip_by_value(begin, 0, tf.strings.length(data))
    end = tf.clip_by_value(end, begin, tf.strings.length(data))
    return tf.strings.substr(data, begin, end - begin)


def opaque_over_white(encoded: tf.Tensor) -> tf.Tensor:
    """The GIF with its first frame's transparent pixels made opaque white.

    A GIF without first-frame transparency comes back unchanged.
    """
    global_table = _table_bytes(byte_reads.bytes_at(encoded, 10, 1)[0])
    start = _HEADER + global_table  # The search skips the palette, which may hold any bytes.
    found = byte_reads.find(_span(encoded, start, tf.strings.length(encoded)), _CONTROL)
    control = start + found
    # flags, delay (2), index, terminator, then the image descriptor: 2C, position and
    # size (8), packed.
    fields = byte_reads.bytes_at(encoded, control + 3, 16)
    flags, index = fields[0], fields[3]
    local_table = _table_bytes(fields[14])
    table = tf.where(local_table > 0, control + 18, _HEADER)
    size = tf.where(local_table > 0, local_table, global_table)
    patch = tf.reduce_all([found >= 0, tf.equal(fields[4], 0), tf.equal(fields[5], 0x2C),
                           tf.bitwise.bitwise_and(flags, 1) > 0, 3 * index + 3 <= size])
    # Both rewrites are computed for any input, with every span clamped to the file;
    # `patch` picks the result, without a branch.
    white, cleared = b"\xff\xff\xff", tf.strings.substr(
        _ALL_BYTES, tf.bitwise.bitwise_and(flags, 0xFE), 1)
    flag_at, entry_at = control + 3, table + 3 * index
    entry_first = entry_at < flag_at  # The global table comes before the extension.
    first, second = tf.minimum(flag_at, entry_at), tf.maximum(flag_at, entry_at)
    first_end = first + tf.where(entry_first, 3, 1)
    second_end = second + tf.where(entry_first, 1, 3)
    rewritten = tf.strings.join([
        _span(encoded, 0, first), tf.where(entry_first, white, cleared),
        _span(encoded, first_end, second), tf.where(entry_first, cleared, white),
        _span(encoded, second_end, tf.strings.length(encoded)),
    ])
    return tf.where(patch, rewritten, encoded)
