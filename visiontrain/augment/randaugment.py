"""Vectorised RandAugment (Cubuk et al. 2019) with a per-IMAGE choice of ops.

`keras.layers.RandAugment` (Keras 3.15) picks its `num_ops` layers once per
batch, so every image of a batch gets the same ops; here every image draws its
own op, sign and therefore parameters, as torchvision/timm do per sample.

No per-image loops. For each of the N slots every image draws an op index and a
sign; two equivalent forms then apply them (tests check they agree bit for bit):
  * routed (default outside XLA): `tf.dynamic_partition` splits the batch by op
    group, each group runs on its own images only, `tf.dynamic_stitch` restores
    the order, so an image pays for one op per slot, not for all of them; the
    geometric group (one bilinear warp) and the point/colour group run as XLA
    code over their images (`_fused_route`);
  * dense (under XLA, which has no dynamic shapes): the whole batch goes through
    three stages whose per-image parameters are identities for images that did
    not pick them: geometric ops (rotate, shear_x/y, translate_x/y) -> one
    per-image affine matrix, one `affine_warp` (fill 128 as timm/official);
    point ops (identity, autocontrast, equalize, solarize, posterize, contrast,
    brightness) -> one per-image, per-channel 256-entry lookup table, one gather
    (equalize builds its tables from per-image histograms); color and sharpness
    -> per-image blend factors, selected with `tf.where`.
Slots stay sequential as in timm: geometric ops of different slots are not
merged into one warp, since a colour op between them does not commute with it.
Pixels are rounded to integers by the table lookup, as PIL's uint8 ops do.

A slot's output is therefore integers in [0, 255], and it is carried as uint8:
every route computes in float32 and casts back inside its own pass, so the
partition, the stitch and the next slot move a quarter of the bytes. The op
takes uint8 or float32 and returns uint8 (the augmenter casts at its end).

Magnitude semantics follow timm's "increasing" variants on the 0-10 scale
(m = M / 10, sign random per image): rotate 30*m degrees, shear 0.3*m,
translate 0.45*m of the side, solarize threshold 256 - 256*m, posterize to
max(1, 4 - int(4*m)) bits, enhance factors (color, contrast, brightness,
sharpness) 1 + 0.9*m*sign. Geometric ops act about the image centre.
"""

from __future__ import annotations

import functools
import math

import tensorflow as tf

from visiontrain.augment import geometry as geo
from visiontrain.augment.ops import (
    RNG_ALG,
    blend,
    grayscale,
    lookup_pixels,
    smooth_like_pil,
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


def _rounded(images: tf.Tensor) -> tf.Tensor:
    return tf.round(tf.clip_by_value(images, 0.0, 255.0))


def _per_image(values: tf.Tensor) -> tf.Tensor:
    return values[:, None, None, None]


def _routed_geometry(images, op_index, sign, m):
    shape = tf.shape(images)
    matrix = _geometry_matrix(op_index, sign, m, shape[1], shape[2])
    return _rounded(geo.affine_warp(images, matrix, fill_mode="constant",
                                    fill_value=FILL_VALUE))


# As XLA code the index arithmetic and the gather are one pass over the pixels: 2.1
# against 3.7 ms per image for the whole table route, one thread, 64x224x224 (TF 2.21).
_LOOKUP = tf.function(lookup_pixels, jit_compile=True, autograph=False, reduce_retracing=True)


def _routed_tables(images, op_index, sign, m):
    indices = tf.cast(images, tf.int32)
    # The tables hold integers in [0, 255]: looking up uint8 writes a quarter of the bytes.
    tables = tf.cast(_point_tables(images, indices, op_index, sign, m), tf.uint8)
    return _padded_call(_LOOKUP, images, tables)


def _routed_autocontrast(images, op_index, sign, m):
    low = tf.reduce_min(images, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    return _rounded(tf.where(high > low, (images - low) * 255.0 / tf.maximum(high - low, 1.0),
                             images))


def _routed_solarize(images, op_index, sign, m):
    return tf.where(images >= 256.0 - 256.0 * m, 255.0 - images, images)


def _routed_posterize(images, op_index, sign, m):
    shift = 2.0 ** (8.0 - max(1.0, 4.0 - math.floor(4.0 * m)))
    return tf.floor(images / shift) * shift


def _routed_brightness(images, op_index, sign, m):
    return _rounded(_per_image(1.0 + 0.9 * m * sign) * images)


def _routed_color(images, op_index, sign, m):
    return tf.round(blend(grayscale(images), images, _per_image(1.0 + 0.9 * m * sign)))


def _routed_sharpness(images, op_index, sign, m):
    return tf.round(blend(smooth_like_pil(images), images, _per_image(1.0 + 0.9 * m * sign)))


# Each image of a slot goes through ONE of these; ops sharing a kernel share a group.
# Every group but geometry reads the image rounded to integers, as the dense path's table
# lookup does, and the arithmetic groups apply the dense path's table formulas to those
# integers, so both paths give identical pixels.
_POINT_OPS = (("autocontrast", _routed_autocontrast), ("solarize", _routed_solarize),
              ("posterize", _routed_posterize), ("brightness", _routed_brightness),
              ("color", _routed_color))


def _routed_point(images, op_index, sign, m):
    """Each image through its own one of the `_POINT_OPS`: all are computed and each
    image's is selected, which XLA (see `_fused_route`) fuses into one pass."""
    out = images
    for name, fn in _POINT_OPS:
        out = tf.where(_per_image(_is(op_index, name)), fn(images, op_index, sign, m), out)
    return out


_ROUTES = (
    (("identity",), lambda images, *_: images),
    (("rotate", "shear_x", "shear_y", "translate_x", "translate_y"), _routed_geometry),
    (tuple(name for name, _ in _POINT_OPS), _routed_point),
    (("equalize", "contrast"), _routed_tables),
    (("sharpness",), _routed_sharpness),
)
# A plain tuple, not a tf.constant: a module-level tensor would initialise TF's devices
# at import, before the tools can split the CPU into logical replicas.
_GROUP_OF_OP = tuple(next(g for g, (names, _) in enumerate(_ROUTES) if name in names)
                     for name in OPS)


# Routes compiled by XLA. The pixel-arithmetic ops form one group, not one per op, so
# XLA compiles a handful of padded shapes (about 5/14 of the batch picks one of them).
# The warp's bilinear gathers compiled by XLA take half the time of TF's
# ImageProjectiveTransformV3 kernel. The histogram tables keep TF's bincount (XLA's
# scatter-add is slow), with only their lookup in XLA (`_LOOKUP`).
_FUSED_ROUTES = ("rotate", _POINT_OPS[0][0], "sharpness")
_GEOMETRY_GROUP = _GROUP_OF_OP[_INDEX["rotate"]]
_SHARPNESS_GROUP = _GROUP_OF_OP[_INDEX["sharpness"]]
_BUCKETS = tuple(2 ** i for i in range(31))
_COMPILED: dict = {}


def _as_float(images: tf.Tensor, rounds: bool) -> tf.Tensor:
    """float32 pixels a route reads: rounded to integers when `rounds` (the table's view)."""
    images = tf.cast(images, tf.float32)
    return _rounded(images) if rounds else images


def _fused_route(group: int, m: float, integral: bool):
    """The route of `group` as XLA code, uint8 out, padded (see `_padded_call`)."""
    names, fn = _ROUTES[group]
    # Only the warp reads unrounded pixels; the others need integers, as the table does.
    rounds = not integral and "rotate" not in names
    key = (group, m, rounds)
    if key not in _COMPILED:
        def compute(images, op_index, sign):
            return tf.cast(fn(_as_float(images, rounds), op_index, sign, m), tf.uint8)

        _COMPILED[key] = tf.function(compute, jit_compile=True, autograph=False,
                                     reduce_retracing=True)
    compiled = _COMPILED[key]

    return lambda images, op_index, sign, _m: _padded_call(compiled, images, op_index, sign)


def _padded_call(compiled, *batched: tf.Tensor) -> tf.Tensor:
    """`compiled` (an XLA tf.function) on `batched`, padded to a power-of-two count, so XLA
    compiles it for at most log2(batch) + 1 shapes, not for every count a route gets."""
    if geo.in_xla_context():
        return compiled.python_function(*batched)
    count = tf.shape(batched[0])[0]
    size = tf.reduce_min(tf.where(tf.constant(_BUCKETS) >= count, _BUCKETS, _BUCKETS[-1]))
    padded = [tf.pad(x, [[0, size - count]] + [[0, 0]] * (x.shape.rank - 1)) for x in batched]
    return compiled(*padded)[:count]


def _slot_route(group: int, m: float, integral: bool):
    """The route of `group` in a routed slot: uint8 pixels in (float32 ones unless
    `integral`), uint8 out."""
    names, fn = _ROUTES[group]
    if names[0] in _FUSED_ROUTES:
        return _fused_route(group, m, integral)
    if integral and names in (("identity",), ("equalize", "contrast")):
        # uint8 through already: the identity, and the table route's uint8 gather.
        return fn
    # Only the warp reads unrounded pixels; the others need integers, as the table does.
    return functools.partial(
        lambda fn, x, *args: tf.cast(fn(_as_float(x, not integral), *args), tf.uint8), fn)


def routed_slot(images: tf.Tensor, op_index: tf.Tensor, sign: tf.Tensor, m: float
                ) -> tf.Tensor:
    """One RandAugment slot where each image runs only the op it picked; uint8 out.

    `tf.dynamic_partition` splits the batch by op group, each group runs on its
    images only, `tf.dynamic_stitch` restores the order: per image one op runs,
    not all fourteen. Equal to `_dense_slot`; not XLA-compilable (dynamic shapes).
    uint8 images (a previous slot's output) are integers already, which skips a
    rounding pass.
    """
    integral = images.dtype == tf.uint8
    group = tf.gather(tf.constant(_GROUP_OF_OP, tf.int32), op_index)
    count = len(_ROUTES)
    parts = tf.dynamic_partition(images, group, count)
    op_parts = tf.dynamic_partition(op_index, group, count)
    sign_parts = tf.dynamic_partition(sign, group, count)
    positions = tf.dynamic_partition(tf.range(tf.shape(images)[0]), group, count)
    outputs = []
    for group, part, part_op, part_sign in zip(range(count), parts, op_parts, sign_parts):
        fn = _slot_route(group, m, integral)
        outputs.append(tf.cond(tf.size(part_op) > 0,
                               lambda fn=fn, x=part, o=part_op, s=part_sign: fn(x, o, s, m),
                               lambda x=part: tf.cast(x, tf.uint8)))
    return tf.reshape(tf.dynamic_stitch(positions, outputs), tf.shape(images))


def _draw_slot(seed: tf.Tensor, batch) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-image op index [B] (int32) and magnitude sign [B] (+-1.0) of one slot."""
    seeds = split_seed(seed, 2)
    op_index = tf.random.stateless_uniform([batch], seeds[0], 0, len(OPS), dtype=tf.int32,
                                         alg=RNG_ALG)
    sign = tf.where(uniform([batch], seeds[1]) < 0.5, -1.0, 1.0)
    return op_index, sign


def _dense_slot(images: tf.Tensor, op_index: tf.Tensor, sign: tf.Tensor, m: float) -> tf.Tensor:
    """Every image through every stage, identity parameters where not picked (XLA-friendly)."""
    # The routed geometry's XLA warp, here over the whole batch (identity where not picked):
    # the same code on the same pixel gives the same value, however the batch is split.
    images = _fused_route(_GEOMETRY_GROUP, m, True)(images, op_index, sign, m)
    images = lookup_pixels(images, _point_tables(images, tf.cast(images, tf.int32), op_index,
                                                 sign, m))

    factor = (1.0 + 0.9 * m * sign)[:, None, None, None]
    color = tf.round(blend(grayscale(images), images, factor))
    # The routed slot's XLA sharpness, over the whole batch, for the reason above.
    sharp = tf.cast(_fused_route(_SHARPNESS_GROUP, m, True)(images, op_index, sign, m),
                    tf.float32)
    images = tf.where(_is(op_index, "color")[:, None, None, None], color, images)
    return tf.cast(tf.where(_is(op_index, "sharpness")[:, None, None, None], sharp, images),
                   tf.uint8)


def make_randaugment(num_ops: int = 2, magnitude: float = 9.0, dense: bool = False):
    """Builds op(images, labels, seed) applying `num_ops` random ops per image.

    Args:
        num_ops: N, ops applied in sequence to each image (each drawn per image).
        magnitude: M on the 0-10 scale.
        dense: run every image through every op stage (`_dense_slot`) even outside
            XLA; the default routes each image through its own op only, and
            falls back to the dense form when traced for XLA.

    Returns:
        The batch op: uint8 or float32 images in, uint8 images out (integers in
        [0, 255], as every op rounds); labels pass through unchanged.
    """
    if not 0 <= magnitude <= MAX_MAGNITUDE:
        raise ValueError(f"RandAugment magnitude must be in [0, {MAX_MAGNITUDE:g}]. "
                         f"Received: magnitude={magnitude}")
    if num_ops < 0 or num_ops != int(num_ops):
        raise ValueError("RandAugment num_ops must be an integer >= 0. "
                         f"Received: num_ops={num_ops}")
    m = magnitude / MAX_MAGNITUDE

    def op(images, labels, seed):
        batch = tf.shape(images)[0]
        draws = [_draw_slot(s, batch)
                 for s in tf.unstack(split_seed(seed, max(int(num_ops), 1)))[:int(num_ops)]]
        use_dense = dense or geo.in_xla_context()
        for op_index, sign in draws:
            if use_dense:
                images = _dense_slot(images, op_index, sign, m)
            else:
                images = routed_slot(images, op_index, sign, m)
        return images, labels

    return op
