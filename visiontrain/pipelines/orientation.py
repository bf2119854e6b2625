"""EXIF orientation, read and applied with TensorFlow ops only.

A phone stores most photos in the sensor's frame and says in the EXIF Orientation
tag (0x0112) how a viewer must turn them; `tf.io.decode_*` ignores the tag. The
converter keeps the source bytes, so `preprocess.decode_rgb` (training, evaluation
and every serving signature, in a process that imports only TensorFlow) turns the
decoded pixels here: one decision for both sides, whatever the file.

Read: by the rules of `exif`, the converter's plain-Python twin, which records
the orientation in every shard so that the training reader need not run this.

Found by one substring search, not a segment walk: every op in a map function
costs microseconds, and a `tf.while_loop` walk halved the training reader's rate.
The search is sound for JPEG because the marker bytes FF E1 cannot occur in
entropy-coded data, where every FF is stuffed.

Each orientation is an optional transpose followed by optional flips, which is
also how a crop window in the shown frame maps back to the stored one, so the
training crop can still use the fused JPEG decode-and-crop kernel.
"""

from __future__ import annotations

import tensorflow as tf

from visiontrain.pipelines import byte_reads, exif, formats


def _u16(pairs: tf.Tensor, big_endian: tf.Tensor) -> tf.Tensor:
    """Unsigned 16-bit integers from byte pairs [..., 2], in either byte order."""
    high, low = pairs[..., 0], pairs[..., 1]
    return tf.where(big_endian, high * 256 + low, low * 256 + high)


def _tiff_offset(encoded: tf.Tensor) -> tf.Tensor:
    """Where the EXIF TIFF block starts in a JPEG or PNG; -1 when there is none."""
    jpeg = tf.equal(tf.strings.substr(encoded, 0, 3), formats.MAGIC["jpeg"][0])
    png = tf.equal(tf.strings.substr(encoded, 0, 8), formats.MAGIC["png"][0])
    found = byte_reads.find(tf.strings.substr(encoded, 0, exif.SEARCH_BYTES),
                            tf.where(jpeg, exif.APP1_HEADER, b"eXIf"))
    # JPEG: FF E1, length, "Exif\0\0". PNG: length, "eXIf", maybe "Exif\0\0".
    around = byte_reads.bytes_at(encoded, found - 4, 14)
    app1 = tf.reduce_all(tf.equal(around[:2], [0xFF, 0xE1]))
    # Some PNG writers start the chunk with JPEG's APP1 header; Pillow skips it.
    png_header = tf.reduce_all(tf.equal(around[8:14], list(exif.APP1_HEADER)))
    tiff = tf.where(jpeg, found + 6, found + tf.where(png_header, 10, 4))
    return tf.where((found >= 4) & ((jpeg & app1) | png), tiff, -1)


def _orientation_in_tiff(encoded: tf.Tensor, tiff: tf.Tensor) -> tf.Tensor:
    """The Orientation value of the first IFD of the TIFF block at `tiff`, 1 if absent."""
    header = byte_reads.bytes_at(encoded, tiff, 8)
    big_endian = tf.reduce_all(tf.equal(header[:4], list(b"MM\0*")))
    little_endian = tf.reduce_all(tf.equal(header[:4], list(b"II*\0")))
    # The IFD offset is 32 bits; a file whose offset needs more than 16 is malformed
    # here (EXIF blocks are at most 64 KiB), which keeps the arithmetic in int32.
    high, low = _u16(header[4:6], big_endian), _u16(header[6:8], big_endian)
    offset = tf.where(big_endian, tf.where(tf.equal(high, 0), low, -1),
                      tf.where(tf.equal(low, 0), high, -1))
    table = byte_reads.bytes_at(encoded, tiff + offset, 2 + 12 * exif.MAX_ENTRIES)
    count = _u16(table[:2], big_endian)
    entries = tf.reshape(table[2:], [exif.MAX_ENTRIES, 6, 2])  # tag, type, count (2), value (2)
    fields = _u16(entries, big_endian)
    matches = tf.equal(fields[:, 0], exif.ORIENTATION_TAG) & (tf.range(exif.MAX_ENTRIES) < count)
    entry = tf.gather(fields, tf.argmax(tf.cast(matches, tf.int32)))
    # A SHORT (type 3) sits in the value field's first half; a LONG (4) fills both,
    # so a small one is the half the byte order makes low.
    as_long = tf.where(big_endian, tf.where(tf.equal(entry[4], 0), entry[5], 0),
                       tf.where(tf.equal(entry[5], 0), entry[4], 0))
    value = tf.where(tf.equal(entry[1], 3), entry[4], tf.where(tf.equal(entry[1], 4), as_long, 0))
    valid = tf.reduce_all([big_endian | little_endian, offset >= 8, tf.reduce_any(matches),
                           value >= 1, value <= 8], axis=0)
    return tf.where(valid, value, 1)


def exif_orientation(encoded: tf.Tensor) -> tf.Tensor:
    """The EXIF Orientation (int32, 1-8) of an encoded JPEG or PNG; 1 for anything else."""
    tiff = _tiff_offset(encoded)
    return tf.where(tiff >= 0, _orientation_in_tiff(encoded, tiff), 1)


def _parts(orientation: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(transpose, flip rows, flip columns), applied in that order, for an orientation."""
    transpose = orientation >= 5
    flip_rows = tf.reduce_any(tf.equal(orientation, [3, 4, 7, 8]))
    flip_columns = tf.reduce_any(tf.equal(orientation, [2, 3, 6, 7]))
    return transpose, flip_rows, flip_columns


def _turned_shape(image: tf.Tensor) -> list[int | None]:
    # A turn may swap the sides, so only a square keeps its static height and width.
    side = image.shape[0] if image.shape[0] == image.shape[1] else None
    return [side, side, image.shape[-1]]


def orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """A decoded image [H, W, C] turned the way a viewer shows it (Pillow's exif_transpose).

    Transpose and reverse copy the image even when told to do nothing; for a whole
    photo, `orient_photo` skips them when there is nothing to do.
    """
    transpose, flip_rows, flip_columns = _parts(orientation)
    turned = tf.transpose(image, tf.where(transpose, [1, 0, 2], [0, 1, 2]))
    turned = tf.reverse(turned, tf.boolean_mask([0, 1], tf.stack([flip_rows, flip_columns])))
    turned.set_shape(_turned_shape(image))
    return turned


def orient_photo(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """`orient` for a whole decoded photo: most need no turn, and copying one costs more
    than the branch."""
    turned = tf.cond(tf.equal(orientation, 1), lambda: image, lambda: orient(image, orientation))
    turned.set_shape(_turned_shape(image))
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
