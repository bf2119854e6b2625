"""EXIF orientation, read and applied with TensorFlow ops only.

A phone stores most photos in the sensor's frame and says in the EXIF Orientation
tag (0x0112) how a viewer must turn them; `tf.io.decode_*` ignores the tag. The
converter keeps the source bytes, so `preprocess.decode_rgb` (training, evaluation
and every serving signature, in a process that imports only TensorFlow) turns the
decoded pixels here: one decision for both sides, whatever the file.

Read: the TIFF block of the first APP1 "Exif" segment of a JPEG (the one Pillow
reads) or the eXIf chunk of a PNG before its image data (with or without an
APP1 header, as Pillow reads it), its first IFD, the tag as
SHORT or LONG. A value outside 1-8, a malformed block, or no block at all means 1
(as stored). Orientation given only in XMP is not read, in training or serving.

Each orientation is an optional transpose followed by optional flips, which is
also how a crop window in the shown frame maps back to the stored one, so the
training crop can still use the fused JPEG decode-and-crop kernel.
"""

from __future__ import annotations

import tensorflow as tf

from visiontrain.pipelines import formats

ORIENTATION_TAG = 0x0112
# A JPEG's EXIF segment follows SOI (or a JFIF APP0) in every writer we know of;
# the walk stops after this many segments so a hostile request cannot make it
# loop over a file of fill bytes. PNG chunks before the eXIf are fewer still.
_MAX_SEGMENTS = 64
# Tags in an IFD are sorted and 0x0112 comes after only a handful (0x0100-0x0111),
# so the first entries hold it whenever it is there.
_MAX_ENTRIES = 64
_SOS, _EOI, _APP1 = 0xDA, 0xD9, 0xE1


def _bytes_at(data: tf.Tensor, length: tf.Tensor, pos: tf.Tensor, count: int) -> tf.Tensor:
    """`count` bytes of `data` from `pos` as int32, zeros past the end (never raises)."""
    pos = tf.clip_by_value(pos, 0, length)
    chunk = tf.strings.substr(data, pos, count) + b"\0" * count
    values = tf.io.decode_raw(tf.strings.substr(chunk, 0, count), tf.uint8)
    return tf.reshape(tf.cast(values, tf.int32), [count])


def _uint(values: tf.Tensor, big_endian: tf.Tensor) -> tf.Tensor:
    """An unsigned integer from bytes [..., N], in either byte order.

    int32: a 4-byte value of 2**31 or more comes out negative, which every caller
    treats as malformed.
    """
    count = values.shape[-1]
    weights = tf.constant([256**i for i in range(count)], tf.int32)
    order = tf.where(big_endian, weights[::-1], weights)
    return tf.reduce_sum(values * order, axis=-1)


def _jpeg_step(data, length, pos):
    """(next position, TIFF offset or -1, stop) for the JPEG segment at `pos`."""
    head = _bytes_at(data, length, pos, 10)
    marker = head[1]
    seg_length = head[2] * 256 + head[3]
    is_exif = tf.logical_and(
        tf.equal(marker, _APP1), tf.reduce_all(tf.equal(head[4:10], list(b"Exif\0\0")))
    )
    standalone = tf.logical_or(
        tf.logical_and(marker >= 0xD0, marker <= 0xD8), tf.equal(marker, 0x01)
    )
    # A fill byte (0xFF 0xFF) advances by one, a standalone marker by two.
    step = tf.where(tf.equal(marker, 0xFF), 1, tf.where(standalone, 2, 2 + seg_length))
    stop = tf.reduce_any(
        [tf.not_equal(head[0], 0xFF), tf.equal(marker, _SOS), tf.equal(marker, _EOI),
         tf.logical_and(tf.logical_not(standalone), seg_length < 2)], axis=0
    )
    return pos + step, tf.where(is_exif, pos + 10, -1), tf.logical_or(stop, is_exif)


def _png_step(data, length, pos):
    """(next position, TIFF offset or -1, stop) for the PNG chunk at `pos`."""
    head = _bytes_at(data, length, pos, 14)
    chunk_type = head[4:8]
    # Some writers start the chunk with JPEG's APP1 header; Pillow skips it, so do we.
    app1_header = tf.reduce_all(tf.equal(head[8:14], list(b"Exif\0\0")))
    is_exif = tf.reduce_all(tf.equal(chunk_type, list(b"eXIf")))
    image_data = tf.logical_or(
        tf.reduce_all(tf.equal(chunk_type, list(b"IDAT"))),
        tf.reduce_all(tf.equal(chunk_type, list(b"IEND"))),
    )
    chunk_length = _uint(head[:4], tf.constant(True))
    tiff = tf.where(app1_header, pos + 14, pos + 8)
    return pos + 12 + chunk_length, tf.where(is_exif, tiff, -1), tf.logical_or(
        tf.logical_or(image_data, is_exif), chunk_length < 0)


def _tiff_offset(data: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
    """Where the EXIF TIFF block starts in a JPEG or PNG, -1 when there is none."""
    jpeg = tf.strings.substr(data, 0, 3) == formats.MAGIC["jpeg"][0]
    png = tf.strings.substr(data, 0, 8) == formats.MAGIC["png"][0]

    def body(pos, found, done):
        jpeg_next, jpeg_found, jpeg_stop = _jpeg_step(data, length, pos)
        png_next, png_found, png_stop = _png_step(data, length, pos)
        next_pos = tf.where(jpeg, jpeg_next, png_next)
        stop = tf.where(jpeg, jpeg_stop, png_stop)
        return next_pos, tf.where(jpeg, jpeg_found, png_found), stop | (next_pos >= length)

    start = tf.where(jpeg, 2, 8)
    _, found, _ = tf.while_loop(
        lambda pos, found, done: tf.logical_not(done),
        body,
        (start, tf.constant(-1), tf.logical_not(jpeg | png)),
        maximum_iterations=_MAX_SEGMENTS,
    )
    return found


def _orientation_in_tiff(data: tf.Tensor, length: tf.Tensor, tiff: tf.Tensor) -> tf.Tensor:
    """The Orientation value of the first IFD of the TIFF block at `tiff`, 1 if absent."""
    header = _bytes_at(data, length, tiff, 8)
    big_endian = tf.reduce_all(tf.equal(header[:4], list(b"MM\0*")))
    little_endian = tf.reduce_all(tf.equal(header[:4], list(b"II*\0")))
    ifd = tiff + _uint(header[4:8], big_endian)
    count = _uint(_bytes_at(data, length, ifd, 2), big_endian)
    entries = tf.reshape(_bytes_at(data, length, ifd + 2, 12 * _MAX_ENTRIES), [_MAX_ENTRIES, 12])
    tags = _uint(entries[:, 0:2], big_endian)
    kinds = _uint(entries[:, 2:4], big_endian)
    matches = tf.logical_and(tf.equal(tags, ORIENTATION_TAG), tf.range(_MAX_ENTRIES) < count)
    first = tf.argmax(tf.cast(matches, tf.int32))
    kind = tf.gather(kinds, first)
    field = tf.reshape(tf.gather(entries, first), [12])[8:12]
    # The value field holds a SHORT (3) in its first two bytes; a LONG (4) in all four,
    # so an orientation is its low half, wherever the byte order puts that.
    head, tail = _uint(field[0:2], big_endian), _uint(field[2:4], big_endian)
    as_long = tf.where(big_endian, tf.where(tf.equal(head, 0), tail, 0),
                       tf.where(tf.equal(tail, 0), head, 0))
    value = tf.where(tf.equal(kind, 3), head, tf.where(tf.equal(kind, 4), as_long, 0))
    valid = tf.reduce_all(
        [big_endian | little_endian, ifd >= tiff + 8, tf.reduce_any(matches),
         value >= 1, value <= 8], axis=0)
    return tf.where(valid, value, 1)


def exif_orientation(encoded: tf.Tensor) -> tf.Tensor:
    """The EXIF Orientation (int32, 1-8) of an encoded JPEG or PNG; 1 for anything else."""
    length = tf.strings.length(encoded)
    tiff = _tiff_offset(encoded, length)
    return tf.where(tiff >= 0, _orientation_in_tiff(encoded, length, tiff), 1)


def _parts(orientation: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(transpose, flip rows, flip columns), applied in that order, for an orientation."""
    transpose = orientation >= 5
    flip_rows = tf.reduce_any(tf.equal(orientation, [3, 4, 7, 8]))
    flip_columns = tf.reduce_any(tf.equal(orientation, [2, 3, 6, 7]))
    return transpose, flip_rows, flip_columns


def orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """A decoded image [H, W, C] turned the way a viewer shows it (Pillow's exif_transpose)."""
    transpose, flip_rows, flip_columns = _parts(orientation)
    # Identity permutations and empty axis lists pass the tensor through uncopied.
    turned = tf.transpose(image, tf.where(transpose, [1, 0, 2], [0, 1, 2]))
    turned = tf.reverse(turned, tf.boolean_mask([0, 1], tf.stack([flip_rows, flip_columns])))
    turned.set_shape([None, None, image.shape[-1]])  # Dynamic axes hide the channel count.
    return turned


def shown_shape(stored_shape: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """[height, width] as shown, from the stored [height, width]."""
    return tf.where(orientation >= 5, stored_shape[::-1], stored_shape)


def stored_window(window: tf.Tensor, stored_shape: tf.Tensor, orientation: tf.Tensor):
    """The stored-frame window [y, x, h, w] whose oriented pixels are `window` as shown.

    `orient(crop(stored, stored_window(w)))` equals `crop(orient(stored), w)`.
    """
    transpose, flip_rows, flip_columns = _parts(orientation)
    shown = shown_shape(stored_shape, orientation)
    y, x, h, w = window[0], window[1], window[2], window[3]
    y = tf.where(flip_rows, shown[0] - y - h, y)
    x = tf.where(flip_columns, shown[1] - x - w, x)
    return tf.where(transpose, tf.stack([x, y, w, h]), tf.stack([y, x, h, w]))
