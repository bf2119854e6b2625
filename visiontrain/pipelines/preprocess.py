"""Per-image preprocessing: small pure tf functions shared by training, evaluation and serving.

`decode_rgb` is THE decision of how an encoded file of any mode (alpha, palette
transparency, 16 bits, grey, CMYK, EXIF orientation) becomes the model's upright
8-bit RGB: training,
evaluation and every serving signature decode through it, and the converter keeps
such files as they are so that it decides for them too (`image_gate.prepare`).
`preprocess_for_eval` is THE evaluation preprocessing: the eval input pipeline and
every serving signature call it, so a served prediction sees exactly the pixels
that evaluation saw. Outputs are uint8: normalisation happens on the device, in the
model's first layers, which keeps host-to-device batches 4x smaller than float32.
"""

from __future__ import annotations

import tensorflow as tf

from visiontrain.pipelines import formats, gif, orientation, webp


def has_magic(encoded: tf.Tensor, image_format: str) -> tf.Tensor:
    """True where the encoded bytes are marked as `image_format` (`formats.MAGIC`, `FORM`)."""
    marked = tf.reduce_any(
        [tf.equal(tf.strings.substr(encoded, 0, len(m)), m) for m in formats.MAGIC[image_format]],
        axis=0,
    )
    if image_format not in formats.FORM:
        return marked
    offset, form = formats.FORM[image_format]
    # Clamped: substr refuses a position past the end of a short element.
    at = tf.minimum(offset, tf.strings.length(encoded))
    return marked & tf.equal(tf.strings.substr(encoded, at, tf.ones_like(at) * len(form)), form)


def is_jpeg(encoded: tf.Tensor) -> tf.Tensor:
    """True when the encoded bytes start with the JPEG SOI marker."""
    return has_magic(encoded, "jpeg")


def _over_white(image: tf.Tensor) -> tf.Tensor:
    """uint8 RGB from a float image [H, W, C] in 16-bit units (0-65535), C of 1-4.

    Shared by PNG and WebP so that the same pixels composite to the same bytes.
    """
    channels = tf.shape(image)[-1]
    has_alpha = tf.equal(channels % 2, 0)  # grey+alpha or RGB+alpha; palette tRNS too.
    alpha = tf.where(has_alpha, image[..., -1:], 65535.0) / 65535.0
    colour = image[..., : channels - tf.cast(has_alpha, tf.int32)] / 257.0
    colour = tf.broadcast_to(colour, tf.concat([tf.shape(image)[:2], [3]], axis=0))
    # Transparent pixels over white, the way a viewer shows them; dropping alpha would
    # expose whatever colour the encoder left under them (often black).
    return tf.cast(tf.round(colour * alpha + 255.0 * (1.0 - alpha)), tf.uint8)


def _decode_png(encoded: tf.Tensor) -> tf.Tensor:
    # Decoding at 16 bits and scaling by 257 rounds 16-bit PNGs (TF's 8-bit decode
    # truncates them) and gives 8-bit PNGs back exactly: v * 257 / 257 == v.
    return _over_white(tf.cast(tf.io.decode_png(encoded, channels=0, dtype=tf.uint16),
                               tf.float32))


def _decode_webp(encoded: tf.Tensor) -> tf.Tensor:
    # TF's WebP decoder refuses a channel count the file does not have, and aborts the
    # process on an animated file asked for "any": the header says which to ask for.
    # An animation's first frame is kept, as for GIF.
    rgba = tf.cond(
        webp.has_alpha(encoded),
        lambda: tf.io.decode_webp(encoded, channels=4)[0],
        lambda: tf.io.decode_webp(encoded, channels=3)[0],
    )
    return _over_white(tf.cast(rgba, tf.float32) * 257.0)


def _decode_other(encoded: tf.Tensor, jpeg_png_only: bool) -> tf.Tensor:
    # expand_animations=False keeps the first GIF frame and a rank-3 shape. TF shows
    # GIF transparency as black, so it is made white first, as PNG alpha is composited;
    # BMP's fourth byte is dropped, and the converter matches (`image_gate._for_shard`).
    if jpeg_png_only:
        return tf.io.decode_image(encoded, channels=3, expand_animations=False)
    encoded = tf.where(has_magic(encoded, "gif"), gif.opaque_over_white(encoded), encoded)
    return tf.cond(has_magic(encoded, "webp"), lambda: _decode_webp(encoded),
                   lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False))


def _decode_stored(encoded: tf.Tensor, jpeg_png_only: bool) -> tf.Tensor:
    """Every mode decided, in the stored frame (EXIF orientation not yet applied)."""
    image = tf.cond(has_magic(encoded, "png"), lambda: _decode_png(encoded),
                    lambda: _decode_other(encoded, jpeg_png_only))
    image.set_shape([None, None, 3])
    return image


def decode_rgb(
    encoded: tf.Tensor, turn: tf.Tensor | None = None, jpeg_png_only: bool = False
) -> tf.Tensor:
    """Decodes a JPEG, PNG, GIF or BMP to uint8 RGB [H, W, 3], the one way for every mode.

    Alpha (RGBA, grey+alpha, PNG and GIF palette transparency) is composited over
    white, 16-bit values are rounded to 8 bits, grey is repeated to three channels,
    CMYK JPEGs are converted by the JPEG decoder, and the EXIF orientation is
    applied, so the image is upright as a viewer shows it.

    Args:
      encoded: a scalar string tensor.
      turn: the EXIF orientation when the caller knows it (a shard records it,
        `schema.ORIENTATION`); None reads it from the bytes, as serving does.
      jpeg_png_only: True when `encoded` is only ever a JPEG or PNG (our shards):
        every image then skips the ops of the other formats (~0.25 ms of CPU per
        image in `Dataset.map` for GIF transparency alone).
    """
    if turn is None:
        turn = orientation.exif_orientation(encoded)
    return orientation.orient_photo(_decode_stored(encoded, jpeg_png_only), turn)


def resize_uint8(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """Bilinear resize to image_size x image_size, rounded back to uint8."""
    resized = tf.image.resize(image, [image_size, image_size], method="bilinear")
    # No clip: bilinear weights are a convex combination, so values stay in [0, 255];
    # a clip would be one more pass over every output pixel on the input hot path.
    return tf.cast(tf.round(resized), tf.uint8)


def center_crop_window(shape: tf.Tensor, crop_fraction: float) -> tf.Tensor:
    """The centred square window covering `crop_fraction` of the shorter side."""
    height, width = shape[0], shape[1]
    side = tf.cast(
        tf.round(crop_fraction * tf.cast(tf.minimum(height, width), tf.float32)), tf.int32
    )
    side = tf.maximum(side, 1)
    return tf.stack([(height - side) // 2, (width - side) // 2, side, side])


def preprocess_for_eval(
    encoded: tf.Tensor,
    image_size: int,
    crop_fraction: float,
    turn: tf.Tensor | None = None,
    jpeg_png_only: bool = False,
) -> tf.Tensor:
    """Evaluation and serving preprocessing: centre crop, resize, uint8 [S, S, 3].

    Decodes the whole image, then crops. The fused JPEG decode-and-crop differs from
    decode-then-crop by up to ~40 levels on pixels at the window's edge (chroma
    upsampling; measured on TF 2.21), which would make `predict_images` on decoded
    pixels disagree with `serving_default` on the same file. Training keeps the fused
    kernel, where its speed matters and exactness does not.

    Args:
      encoded: a scalar string tensor, a JPEG, PNG, GIF or BMP.
      image_size: output side in pixels.
      crop_fraction: fraction of the shorter side kept by the centre crop
        (0.875 is the ImageNet convention; 1.0 keeps the whole square centre).
      turn, jpeg_png_only: see `decode_rgb`.

    Returns:
      A uint8 tensor of shape [image_size, image_size, 3].
    """
    image = decode_rgb(encoded, turn, jpeg_png_only)[None]
    return preprocess_decoded_for_eval(image, image_size, crop_fraction)[0]


def preprocess_decoded_for_eval(
    images: tf.Tensor, image_size: int, crop_fraction: float
) -> tf.Tensor:
    """`preprocess_for_eval` for already decoded uint8 images [B, H, W, 3].

    The same pixels as `preprocess_for_eval` on the encoded originals.
    """
    window = center_crop_window(tf.shape(images)[1:3], crop_fraction)
    cropped = images[:, window[0] : window[0] + window[2], window[1] : window[1] + window[3], :]
    return resize_uint8(cropped, image_size)


def random_crop_window(
    shape: tf.Tensor,
    seed: tf.Tensor,
    area_range: tuple[float, float],
    aspect_ratio_range: tuple[float, float],
) -> tf.Tensor:
    """An Inception-style random-resized-crop window, stateless in `seed` ([2] int)."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_size=tf.concat([shape, [3]], axis=0),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=seed,
        min_object_covered=0.1,
        aspect_ratio_range=aspect_ratio_range,
        area_range=area_range,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def decode_random_crop(
    encoded: tf.Tensor,
    seed: tf.Tensor,
    area_range: tuple[float, float],
    aspect_ratio_range: tuple[float, float],
    turn: tf.Tensor,
    jpeg_png_only: bool = False,
) -> tf.Tensor:
    """Decodes a random-resized-crop window (not yet resized or turned), uint8 RGB.

    The window is drawn in the shown frame of EXIF orientation `turn` and decoded
    from the stored one, so a rotated photo gets the crops of its upright twin.
    JPEGs read the shape from the header and use the fused decode-and-crop kernel,
    which skips the IDCT of blocks outside the window and stops after its last row;
    other formats are decoded whole and sliced. One branch per format: every op of
    either branch costs time per image inside `Dataset.map` (measured on TF 2.21).
    `jpeg_png_only`: see `decode_rgb`.
    """

    def stored_window(stored_shape):
        shown = orientation.shown_shape(stored_shape, turn)
        window = random_crop_window(shown, seed, area_range, aspect_ratio_range)
        return orientation.stored_window(window, stored_shape, turn)

    def jpeg():
        window = stored_window(tf.image.extract_jpeg_shape(encoded)[:2])
        return tf.image.decode_and_crop_jpeg(encoded, window, channels=3)

    def other():
        image = _decode_stored(encoded, jpeg_png_only)
        window = stored_window(tf.shape(image)[:2])
        return image[window[0] : window[0] + window[2], window[1] : window[1] + window[3]]

    return tf.cond(is_jpeg(encoded), jpeg, other)


def preprocess_for_train(
    encoded: tf.Tensor,
    seed: tf.Tensor,
    image_size: int,
    area_range: tuple[float, float],
    aspect_ratio_range: tuple[float, float],
    turn: tf.Tensor | None = None,
    jpeg_png_only: bool = False,
) -> tf.Tensor:
    """Training preprocessing on the host: random-resized crop fused with decoding.

    The crop is turned upright after the resize: turning the small square costs
    less than a branch around turning the crop, and bilinear resizing commutes with
    turns up to rounding. `turn`, `jpeg_png_only`: see `decode_rgb`. Flips, colour
    and the rest of the augmentation run later, on the device.
    """
    if turn is None:
        turn = orientation.exif_orientation(encoded)
    crop = decode_random_crop(encoded, seed, area_range, aspect_ratio_range, turn, jpeg_png_only)
    return orientation.orient(resize_uint8(crop, image_size), turn)
