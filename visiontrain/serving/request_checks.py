"""In-graph checks of serving requests, run BEFORE any image is decoded.

A request is a batch; one bad element must fail the whole call with
INVALID_ARGUMENT and a message naming the element and the problem, never crash
the server or return outputs misaligned with the inputs. Formats are sniffed by
their magic bytes and image dimensions are read from the headers alone, so a
small file claiming 16000x16000 pixels is rejected without allocating them.
"""

from __future__ import annotations

import tensorflow as tf

from visiontrain.pipelines import preprocess, webp

# Every header field read below lies within the first 26 bytes; padding each
# element to this length keeps tf.strings.substr in range for short garbage.
_HEADER_BYTES = 32


def _header(encoded: tf.Tensor) -> tf.Tensor:
    return tf.strings.substr(tf.strings.join([encoded, b"\0" * _HEADER_BYTES]), 0, _HEADER_BYTES)


def _field(header: tf.Tensor, start: int, dtype: tf.DType, little_endian: bool) -> tf.Tensor:
    """Two consecutive integers (width, height) of the header, as int64 [N, 2]."""
    length = 2 * dtype.size
    raw = tf.io.decode_raw(tf.strings.substr(header, start, length), dtype, little_endian)
    return tf.cast(raw, tf.int64)


def _png_size(header: tf.Tensor) -> tf.Tensor:
    # decode_raw has no uint32: read each big-endian uint32 as two uint16 halves.
    halves = _field(header, 16, tf.uint16, False)
    halves = tf.concat([halves, _field(header, 20, tf.uint16, False)], axis=-1)
    return halves[:, 0::2] * 65536 + halves[:, 1::2]


def _jpeg_pixels(encoded: tf.Tensor, jpeg: tf.Tensor) -> tf.Tensor:
    def one(args):
        element, is_jpeg = args
        return tf.cond(
            is_jpeg,
            lambda: tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(element)[:2], tf.int64)),
            lambda: tf.constant(0, tf.int64),
        )

    return tf.map_fn(one, (encoded, jpeg), fn_output_signature=tf.int64)


def header_pixels(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Format check and header pixel count of a batch of encoded images.

    Args:
      encoded: string [N], encoded image files.

    Returns:
      (known [N] bool: a JPEG, PNG, GIF, BMP or WebP by magic bytes,
       pixels [N] int64: width * height from the header; 0 where unknown).
    """
    header = _header(encoded)
    jpeg, png, gif, bmp, webp = (
        preprocess.has_magic(header, f) for f in ("jpeg", "png", "gif", "bmp", "webp"))
    # PNG IHDR: big-endian uint32 width, height at byte 16. GIF logical screen:
    # little-endian uint16 at byte 6. BMP info header: little-endian int32 at 18,
    # the height negative for top-down bitmaps.
    png_pixels = tf.reduce_prod(_png_size(header), axis=-1)
    gif_pixels = tf.reduce_prod(_field(header, 6, tf.uint16, True), axis=-1)
    bmp_pixels = tf.reduce_prod(tf.abs(_field(header, 18, tf.int32, True)), axis=-1)
    pixels = tf.zeros_like(png_pixels)
    pixels = tf.where(png, png_pixels, pixels)
    pixels = tf.where(gif, gif_pixels, pixels)
    pixels = tf.where(bmp, bmp_pixels, pixels)
    pixels = tf.where(webp, _webp_pixels(header), pixels)
    pixels = tf.where(jpeg, _jpeg_pixels(encoded, jpeg), pixels)
    known = jpeg | png | gif | bmp | webp
    return known, pixels


def _webp_pixels(header: tf.Tensor) -> tf.Tensor:
    """Canvas pixels of WebP headers [N], read as the converter's gate reads them."""
    chunk = tf.strings.substr(header, 12, 4)
    b = tf.cast(tf.io.decode_raw(tf.strings.substr(header, 20, 12), tf.uint8), tf.int64)
    # VP8X: canvas width and height minus one, 24 bits each, little-endian, at byte 24.
    extended = (1 + b[:, 4] + b[:, 5] * 256 + b[:, 6] * 65536) * (
        1 + b[:, 7] + b[:, 8] * 256 + b[:, 9] * 65536)
    # VP8L: after the signature byte, 14 bits of width and of height, minus one.
    bits = b[:, 1] + b[:, 2] * 256 + b[:, 3] * 65536 + b[:, 4] * 16777216
    lossless = (1 + bits % 16384) * (1 + (bits // 16384) % 16384)
    # VP8: after the frame tag and start code, 14 bits each at bytes 26 and 28.
    lossy = ((b[:, 6] + b[:, 7] * 256) % 16384) * ((b[:, 8] + b[:, 9] * 256) % 16384)
    return tf.where(tf.equal(chunk, b"VP8X"), extended, tf.where(
        tf.equal(chunk, b"VP8L"), lossless, tf.where(tf.equal(chunk, b"VP8 "), lossy, 0)))


def _animated_webp(encoded: tf.Tensor) -> tf.Tensor:
    """True where a WebP's VP8X flags mark an animation: TF 2.21 refuses one without
    alpha for any channel count, and aborts the process when asked for "any"."""
    header = _header(encoded)
    flags = tf.cast(tf.io.decode_raw(tf.strings.substr(header, 20, 1), tf.uint8)[:, 0], tf.int32)
    return (preprocess.has_magic(header, "webp") & tf.equal(tf.strings.substr(header, 12, 4),
                                                              b"VP8X")
            & (tf.bitwise.bitwise_and(flags, webp.ANIMATION) > 0))


def _contains(encoded: tf.Tensor, marker: bytes) -> tf.Tensor:
    # Splitting on a byte string is byte-exact, unlike regexes, which read UTF-8.
    return tf.strings.split(encoded, marker).row_lengths() > 1


def _last_piece(encoded: tf.Tensor, marker: bytes) -> tf.Tensor:
    pieces = tf.strings.split(encoded, marker)
    return tf.gather(pieces.values, pieces.row_limits() - 1)


def truncated(encoded: tf.Tensor) -> tf.Tensor:
    """True where a JPEG, PNG or GIF lacks its end marker, or a WebP is shorter than its
    header says: the file was cut short.

    The same structural test as the converter's gate (`image_gate`), so a file
    one accepts the other accepts. A JPEG must end its last scan (SOS, FFDA) with
    an end-of-image marker (FFD9); checking after the last scan keeps an embedded
    EXIF thumbnail's FFD9 from hiding a cut. Without this, the decoder fails with
    "jpeg::Uncompress failed" and no element index.
    """
    header = _header(encoded)
    jpeg, png, gif = (preprocess.has_magic(header, f) for f in ("jpeg", "png", "gif"))
    jpeg_ok = _contains(encoded, b"\xff\xda") & _contains(
        _last_piece(encoded, b"\xff\xda"), b"\xff\xd9")
    png_ok = _contains(encoded, b"IEND")
    # A GIF ends in its trailer byte ";"; the gate looks for it in the last 16 bytes.
    tail = tf.strings.substr(tf.strings.join([b"\0" * 16, encoded]), -16, 16)
    gif_ok = _contains(tail, b";")
    # A WebP (RIFF) says its length: 8 bytes plus the little-endian size at byte 4.
    webp = preprocess.has_magic(header, "webp")
    declared = tf.cast(_field(header, 4, tf.uint16, True), tf.int64)
    webp_ok = tf.cast(tf.strings.length(encoded), tf.int64) >= (
        8 + declared[:, 0] + declared[:, 1] * 65536)
    return (jpeg & ~jpeg_ok) | (png & ~png_ok) | (gif & ~gif_ok) | (webp & ~webp_ok)


def check_encoded(encoded: tf.Tensor, max_pixels: int, input_name: str) -> tf.Tensor:
    """`encoded` unchanged, once every element passed the format and size checks.

    Raises (when run):
      tf.errors.InvalidArgumentError naming the offending indices and the limit.
    """
    encoded = tf.ensure_shape(encoded, [None])
    cut = truncated(encoded)
    # First: reading the JPEG header of a cut file fails without naming the element.
    complete = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(cut)),
        [
            f"{input_name}: element(s) at index",
            tf.where(cut)[:, 0],
            "are truncated (no end-of-image marker); send the whole file.",
        ],
        summarize=16,
    )
    with tf.control_dependencies([complete]):
        known, pixels = header_pixels(encoded)
    unknown_at = tf.where(tf.logical_not(known))[:, 0]
    known_format = tf.debugging.Assert(
        tf.reduce_all(known),
        [
            f"{input_name}: element(s) at index",
            unknown_at,
            "are not JPEG, PNG, GIF, BMP or WebP files (checked by their first bytes); "
            "send the raw encoded file bytes (base64 in a REST request's {'b64': ...}).",
        ],
        summarize=16,
    )
    animated = _animated_webp(encoded)
    still = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(animated)),
        [f"{input_name}: element(s) at index", tf.where(animated)[:, 0],
         "are animated WebP files, which TensorFlow cannot decode; send one frame as PNG, "
         "JPEG or a still WebP."],
        summarize=16,
    )
    with tf.control_dependencies([known_format, still]):
        bad_size = tf.logical_or(pixels > max_pixels, pixels <= 0)
        size_ok = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad_size)),
            [
                f"{input_name}: element(s) at index",
                tf.where(bad_size)[:, 0],
                "declare",
                tf.boolean_mask(pixels, bad_size),
                f"pixels in their headers; the limit is 1 to {max_pixels} (--max_pixels at "
                "export). Downscale the image before sending it.",
            ],
            summarize=16,
        )
    with tf.control_dependencies([size_ok]):
        return tf.identity(encoded)


def check_decoded(images: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """`images` unchanged, once its height * width is within 1..max_pixels."""
    images = tf.ensure_shape(images, [None, None, None, 3])
    shape = tf.shape(images, out_type=tf.int64)
    pixels = shape[1] * shape[2]
    ok = tf.debugging.Assert(
        tf.logical_and(pixels > 0, pixels <= max_pixels),
        [
            "images: height x width is",
            shape[1:3],
            f"; it must be 1 to {max_pixels} pixels (--max_pixels at export).",
        ],
    )
    with tf.control_dependencies([ok]):
        return tf.identity(images)
