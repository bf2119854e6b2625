"""Vectorised RandAugment (Cubuk et al. 2019) with a per-IMAGE choice of ops.

`keras.layers.RandAugment` (Keras 3.15) picks its `num_ops` layers once per
batch, so every image of a batch gets the same ops; here every image draws its
own op, sign and therefore parameters, as torchvision/timm do per sample.

No per-image loops: for each of the N slots every image draws an op index, and
the batch goes through three whole-batch stages whose per-image parameters are
identities for images that did not pick them:
  * geometric ops (rotate, shear_x/y, translate_x/y) -> one per-image affine
    matrix, one `affine_warp` (XLA-compilable, fill 128 as timm/official);
  * point ops (identity, autocontrast, equalize, solarize, posterize, contrast,
    brightness) -> one per-image, per-channel 256-entry lookup table, one gather
    (equalize builds its tables from per-image histograms via a segment sum);
  * color and sharpness -> per-image blend factors, selected with `tf.where`.
Pixels are rounded to integers by the table lookup, as PIL's uint8 ops do.

Magnitude semantics follow timm's "increasing" variants on the 0-10 scale
(m = M / 10, sign random per image): rotate 30*m degrees, shear 0.3*m,
translate 0.45*m of the side, solarize threshold 256 - 256*m, posterize to
max(1, 4 - int(4*m)) bits, enhance factors (color, contrast, brightness,
sharpness) 1 + 0.9*m*sign. Geometric ops act about the image centre.
"""

from __future__ import annotations

import math

import tensorflow as tf

from visiontrain.pipelines import augment_geometry as geo
from visiontrain.pipelines.augment_ops import (
    RNG_ALG,
    blend,
    grayscale,
    split_seed,
    uniform,
)

OPS = ("identity", "autocontrast", "equalize", "rotate", "solarize", "color", "posterize",
       "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y")
_INDEX = {name: i for i, name in enumerate(OPS)}
# Ops served by the lookup-table stage; any other op maps to the identity table (0).
_LUT_OPS = ("identity", "autocontrast", "equalize", "solarize", "posterize", "contrast",
            "brightness")
MAX_MAGNITUDE = 10.0
FILL_VALUE = 128.0


def _is(op_index: tf.Tensor, name: str) -> tf.Tensor:
    return tf.equal(op_index, _INDEX[name])


def _geometry_matrix(op_index, sign, m, height, width):
    """One affine per image: the identity unless its op is geometric."""
    def amount(name, scale):
        return tf.where(_is(op_index, name), sign * m * scale, 0.0)

    rotate = geo.rotation_matrix(amount("rotate", 30.0 * math.pi / 180.0), height, width)
    shear = geo.shear_matrix(amount("shear_x", 0.3), amount("shear_y", 0.3), height, width)
    shift = geo.translation_matrix(amount("translate_x", 0.45) * tf.cast(width, tf.float32),
                                   amount("translate_y", 0.45) * tf.cast(height, tf.float32))
    return rotate @ shear @ shift


def _equalize_tables(pixels: tf.Tensor, histograms: tf.Tensor) -> tf.Tensor:
    """PIL ImageOps.equalize tables per image and channel, as the official TF port."""
    levels = tf.range(256, dtype=tf.float32)
    last_nonzero = tf.reduce_max(tf.where(histograms > 0, levels, 0.0), axis=-1, keepdims=True)
    last_count = tf.reduce_sum(tf.where(levels == last_nonzero, histograms, 0.0), -1, keepdims=True)
    step = tf.floor((pixels - last_count) / 255.0)
    safe_step = tf.maximum(step, 1.0)
    table = tf.floor((tf.cumsum(histograms, axis=-1) + tf.floor(safe_step / 2.0)) / safe_step)
    table = tf.concat([tf.zeros_like(table[..., :1]), table[..., :-1]], axis=-1)
    return tf.where(step > 0, tf.clip_by_value(table, 0.0, 255.0), levels)


def _point_tables(images, indices, op_index, sign, m):
    """Per-image, per-channel lookup tables [B, 3, 256] for the point ops."""
    batch = tf.shape(images)[0]
    pixels = tf.cast(tf.shape(images)[1] * tf.shape(images)[2], tf.float32)
    levels = tf.range(256, dtype=tf.float32)
    identity = tf.broadcast_to(levels, [batch, 3, 256])
    factor = (1.0 + 0.9 * m * sign)[:, None, None]

    channel_ids = tf.transpose(indices, [0, 3, 1, 2])
    channel_ids = tf.reshape(channel_ids, [batch * 3, -1])
    if geo.in_xla_context():
        segment = tf.range(batch * 3, dtype=tf.int32)[:, None] * 256 + channel_ids
        histograms = tf.math.unsorted_segment_sum(
            tf.ones_like(segment, tf.float32), segment, batch * 3 * 256)
    else:
        # DenseBincount is ~2x faster than the scatter-add but has no XLA kernel.
        histograms = tf.cast(tf.math.bincount(channel_ids, minlength=256, maxlength=256,
                                              axis=-1), tf.float32)
    histograms = tf.reshape(histograms, [batch, 3, 256])

    low = tf.cast(tf.reduce_min(indices, axis=[1, 2]), tf.float32)[..., None]
    high = tf.cast(tf.reduce_max(indices, axis=[1, 2]), tf.float32)[..., None]
    autocontrast = tf.where(high > low, (levels - low) * 255.0 / tf.maximum(high - low, 1.0),
                            levels)
    threshold = 256.0 - 256.0 * m
    solarize = tf.where(levels >= threshold, 255.0 - levels, levels)
    shift = 2.0 ** (8.0 - max(1.0, 4.0 - math.floor(4.0 * m)))
    posterize = tf.floor(levels / shift) * shift
    luma = tf.reduce_sum(tf.constant([0.299, 0.587, 0.114])[None, :, None] * histograms * levels,
                         axis=[1, 2]) / pixels
    mean = tf.floor(luma + 0.5)[:, None, None]
    tables = tf.stack([
        identity,
        autocontrast,
        _equalize_tables(pixels, histograms),
        tf.broadcast_to(solarize, [batch, 3, 256]),
        tf.broadcast_to(posterize, [batch, 3, 256]),
        tf.broadcast_to(mean + factor * (levels - mean), [batch, 3, 256]),
        tf.broadcast_to(factor * levels, [batch, 3, 256]),
    ], axis=0)
    lut_slot = tf.zeros_like(op_index)
    for slot, name in enumerate(_LUT_OPS):
        lut_slot = tf.where(_is(op_index, name), slot, lut_slot)
    chosen = tf.gather(tf.transpose(tables, [1, 0, 2, 3]), lut_slot, batch_dims=1)
    return tf.round(tf.clip_by_value(chosen, 0.0, 255.0))


def _sharpness_base(images: tf.Tensor) -> tf.Tensor:
    """PIL's SMOOTH filter with the one-pixel border left unfiltered."""
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    smooth = tf.nn.depthwise_conv2d(images, kernel, [1, 1, 1, 1], "VALID")
    smooth = tf.pad(smooth, [[0, 0], [1, 1], [1, 1], [0, 0]])
    shape = tf.shape(images)
    rows = tf.range(shape[1])[:, None]
    cols = tf.range(shape[2])[None, :]
    interior = (rows > 0) & (rows < shape[1] - 1) & (cols > 0) & (cols < shape[2] - 1)
    return tf.where(interior[None, :, :, None], smooth, images)


def _apply_slot(images: tf.Tensor, seed: tf.Tensor, m: float) -> tf.Tensor:
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    seeds = split_seed(seed, 2)
    op_index = tf.random.stateless_uniform([batch], seeds[0], 0, len(OPS), dtype=tf.int32,
                                         alg=RNG_ALG)
    sign = tf.where(uniform([batch], seeds[1]) < 0.5, -1.0, 1.0)

    images = geo.affine_warp(images, _geometry_matrix(op_index, sign, m, height, width),
                             fill_mode="constant", fill_value=FILL_VALUE)
    indices = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 255.0)), tf.int32)
    tables = _point_tables(images, indices, op_index, sign, m)
    flat_index = ((tf.range(batch)[:, None, None, None] * 3 + tf.range(3)) * 256 + indices)
    images = tf.gather(tf.reshape(tables, [-1]), flat_index)

    factor = (1.0 + 0.9 * m * sign)[:, None, None, None]
    color = tf.round(blend(grayscale(images), images, factor))
    sharp = tf.round(blend(_sharpness_base(images), images, factor))
    images = tf.where(_is(op_index, "color")[:, None, None, None], color, images)
    return tf.where(_is(op_index, "sharpness")[:, None, None, None], sharp, images)


def make_randaugment(num_ops: int = 2, magnitude: float = 9.0):
    """Builds op(images, labels, seed) applying `num_ops` random ops per image.

    Args:
        num_ops: N, ops applied in sequence to each image (each drawn per image).
        magnitude: M on the 0-10 scale.

    Returns:
        The batch op; labels pass through unchanged.
    """
    if not 0 <= magnitude <= MAX_MAGNITUDE:
        raise ValueError(f"RandAugment magnitude must be in [0, {MAX_MAGNITUDE:g}]. "
                         f"Received: magnitude={magnitude}")
    if num_ops < 0 or num_ops != int(num_ops):
        raise ValueError("RandAugment num_ops must be an integer >= 0. "
                         f"Received: num_ops={num_ops}")
    m = magnitude / MAX_MAGNITUDE

    def op(images, labels, seed):
        for slot_seed in tf.unstack(split_seed(seed, max(int(num_ops), 1)))[:int(num_ops)]:
            images = _apply_slot(images, slot_seed, m)
        return images, labels

    return op
