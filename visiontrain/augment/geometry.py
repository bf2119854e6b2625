"""Per-image affine warps that compile under XLA.

`tf.raw_ops.ImageProjectiveTransformV3` (behind `keras.layers.RandomRotation`,
`RandomTranslation`, `RandomZoom` and tf.image transforms) still has no XLA kernel
on TF 2.21 (tensorflow/tensorflow#100865; checked: "No registered
'ImageProjectiveTransformV3' OpKernel for XLA_CPU_JIT"). `affine_warp` uses that
fast kernel outside XLA and, when traced for XLA, the same bilinear resampling
written with gathers, so a jit-compiled train step can hold it.

Matrices map OUTPUT pixel coordinates (x, y, 1) to INPUT coordinates, so warping
by M1 and then by M2 equals one warp by `M1 @ M2`: consecutive geometric ops are
merged into one resampling (one interpolation blur instead of several).
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

FILL_MODES = ("constant", "reflect")


def in_xla_context() -> bool:
    """True while tracing for XLA (jit_compile=True), where some TF kernels are missing."""
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _centered(linear: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Embeds per-image 2x2 linear maps [B,2,2] as 3x3 maps about the image centre."""
    center = tf.stack([(tf.cast(width, tf.float32) - 1.0) / 2.0,
                       (tf.cast(height, tf.float32) - 1.0) / 2.0])
    centers = tf.broadcast_to(center, [tf.shape(linear)[0], 2])
    offset = centers - tf.linalg.matvec(linear, centers)
    top = tf.concat([linear, offset[:, :, None]], axis=2)
    bottom = tf.broadcast_to(tf.constant([[[0.0, 0.0, 1.0]]]), [tf.shape(linear)[0], 1, 3])
    return tf.concat([top, bottom], axis=1)


def rotation_matrix(angles: tf.Tensor, height, width) -> tf.Tensor:
    """Rotations about the centre by `angles` radians, [B] -> [B,3,3]."""
    cos, sin = tf.cos(angles), tf.sin(angles)
    linear = tf.stack([tf.stack([cos, -sin], -1), tf.stack([sin, cos], -1)], axis=1)
    return _centered(linear, height, width)


def shear_matrix(shear_x: tf.Tensor, shear_y: tf.Tensor, height, width) -> tf.Tensor:
    """Shears about the centre (x' = x + sx*y, y' = y + sy*x), [B], [B] -> [B,3,3]."""
    ones = tf.ones_like(shear_x)
    linear = tf.stack([tf.stack([ones, shear_x], -1), tf.stack([shear_y, ones], -1)], axis=1)
    return _centered(linear, height, width)


def zoom_matrix(zoom: tf.Tensor, height, width) -> tf.Tensor:
    """Isotropic zoom about the centre; zoom > 1 magnifies, [B] -> [B,3,3]."""
    inv = 1.0 / zoom
    zeros = tf.zeros_like(zoom)
    linear = tf.stack([tf.stack([inv, zeros], -1), tf.stack([zeros, inv], -1)], axis=1)
    return _centered(linear, height, width)


def translation_matrix(dx: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    """Moves the content by (dx, dy) pixels, [B], [B] -> [B,3,3]."""
    ones, zeros = tf.ones_like(dx), tf.zeros_like(dx)
    return tf.stack([tf.stack([ones, zeros, -dx], -1),
                     tf.stack([zeros, ones, -dy], -1),
                     tf.stack([zeros, zeros, ones], -1)], axis=1)


def _reflect(index: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Symmetric reflection (d c b a | a b c d | d c b a), as Keras' 'reflect'."""
    period = 2 * size
    index = tf.math.floormod(index, period)
    return tf.where(index >= size, period - 1 - index, index)


def affine_warp(images: tf.Tensor, matrices: tf.Tensor, fill_mode: str = "reflect",
                fill_value: float = 0.0) -> tf.Tensor:
    """Bilinear resampling of each image by its own affine matrix.

    Args:
        images: float [B, H, W, C].
        matrices: float [B, 3, 3], output -> input pixel coordinates.
        fill_mode: "reflect" or "constant" for samples outside the image.
        fill_value: the constant used by fill_mode="constant".

    Returns:
        float [B, H, W, C]; an identity matrix returns `images` exactly.
    """
    if fill_mode not in FILL_MODES:
        raise ValueError(f"fill_mode must be one of {FILL_MODES}. "
                         f"Received: fill_mode={fill_mode!r}")
    shape = tf.shape(images)
    if not in_xla_context():
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=tf.reshape(matrices, [-1, 9])[:, :8],
            output_shape=shape[1:3], fill_value=tf.cast(fill_value, tf.float32),
            interpolation="BILINEAR", fill_mode=fill_mode.upper())
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    ys, xs = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
    grid = tf.cast(tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1]),
                             tf.ones([height * width], tf.int32)], axis=0), tf.float32)
    # Written out rather than as one einsum, so each coordinate is the same sum of the
    # same products whatever the batch size (a matmul kernel may order it otherwise).
    x = matrices[:, 0, 0:1] * grid[0] + matrices[:, 0, 1:2] * grid[1] + matrices[:, 0, 2:3]
    y = matrices[:, 1, 0:1] * grid[0] + matrices[:, 1, 1:2] * grid[1] + matrices[:, 1, 2:3]
    x0, y0 = tf.floor(x), tf.floor(y)
    wx, wy = x - x0, y - y0
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    flat = tf.reshape(images, [-1, channels])
    base = (tf.range(batch) * height * width)[:, None]
    out = tf.zeros([batch, height * width, channels], images.dtype)
    for dy, dx, weight in ((0, 0, (1 - wx) * (1 - wy)), (0, 1, wx * (1 - wy)),
                           (1, 0, (1 - wx) * wy), (1, 1, wx * wy)):
        xi, yi = x0 + dx, y0 + dy
        if fill_mode == "reflect":
            xi, yi = _reflect(xi, width), _reflect(yi, height)
            valid = None
        else:
            valid = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
            xi, yi = tf.clip_by_value(xi, 0, width - 1), tf.clip_by_value(yi, 0, height - 1)
        values = tf.gather(flat, base + yi * width + xi)
        if valid is not None:
            values = tf.where(valid[..., None], values, tf.cast(fill_value, images.dtype))
        out += weight[..., None] * values
    return tf.reshape(out, shape)
