"""Per-image photometric and geometric augmentation ops, vectorised over the batch.

Every op factory returns `op(images, labels, seed) -> (images, labels)` on float
images in [0, 255] and a stateless seed (int [2]); each image draws its own
parameters. Keras 3.15's RandomFlip/RandomBrightness/RandomContrast/RandomErasing
are per-image too, but they draw from a `SeedGenerator` variable and
`keras.random` refuses tensor seeds (`draw_seed` takes only int or
SeedGenerator), so they cannot follow a (seed, step, replica) stream and
replicas sharing the mirrored generator state would see the same numbers. Their
geometric layers also cannot be jit-compiled (see `augment_geometry`). Hence
these small tf ops; none needs keras-cv.

Cost: a float32 batch of 64 at 224 px is 38 MB, and TF's CPU kernels run every op
as its own pass over it (broadcasting ones, such as a `tf.where` on a [B,1,1,1]
condition, element by element), so a five-op colour jitter cost about as much as
decoding and cropping the images. The pixel math of each op is therefore one
`fused` function that XLA compiles into a single loop over the batch; the small
per-image draws stay outside it (XLA's Philox derives other numbers than TF's
kernel from a seed it gets at run time, so draws inside would change the stream).
The pixel functions also take the uint8 batch and cast it in that same loop: the
first op of a policy then costs the train step's cast and nothing more.
"""

from __future__ import annotations

import math

import tensorflow as tf

from visiontrain.augment import geometry as geo

# Pinned so eager, graph and XLA draw the same numbers ("auto_select" differs under XLA).
RNG_ALG = "philox"
# ITU-R 601 luma, the weights PIL uses for "L" and so timm/torchvision for grayscale.
LUMA = (0.299, 0.587, 0.114)


def fused(fn):
    """`fn` compiled by XLA into one pass over its inputs, wherever it is called.

    Inside an XLA context (a jit-compiled train step) `fn` is traced as it is, as
    part of the enclosing computation. `fused(fn).reference` is `fn` itself, the
    op-by-op formulation the tests compare against.
    """
    compiled = tf.function(fn, jit_compile=True, autograph=False, reduce_retracing=True)

    def call(*args):
        return fn(*args) if geo.in_xla_context() else compiled(*args)

    call.reference = fn
    return call


def split_seed(seed: tf.Tensor, num: int) -> tf.Tensor:
    """Independent stateless seeds [num, 2] from one seed [2]."""
    return tf.random.experimental.stateless_split(seed, num, alg=RNG_ALG)


def uniform(shape, seed: tf.Tensor, low: float = 0.0, high: float = 1.0) -> tf.Tensor:
    """Stateless float32 uniform in [low, high)."""
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high, alg=RNG_ALG)


def grayscale(images: tf.Tensor) -> tf.Tensor:
    """Luma [B, H, W, 1] of RGB images.

    A sum of three channel slices rather than a reduction over the last axis: XLA
    fuses it into the surrounding loop instead of running a reduction per pixel.
    """
    return (images[..., 0:1] * LUMA[0] + images[..., 1:2] * LUMA[1]
            + images[..., 2:3] * LUMA[2])


def blend(base: tf.Tensor, images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """PIL ImageEnhance: base + factor * (images - base), clipped to [0, 255]."""
    return tf.clip_by_value(base + factor * (images - base), 0.0, 255.0)


def smooth_like_pil(images: tf.Tensor) -> tf.Tensor:
    """PIL's SMOOTH filter (3x3 ones, centre 5, over 13) with the one-pixel border left
    unfiltered.

    The 3x3 sums are of integer pixels, exact in float32 in any order of addition, so
    TF's ops and XLA's fused code give the same pixels (a depthwise convolution's
    weighted sums did not: XLA rounded some pixels one level apart).
    """
    rows = images[:, :-2] + images[:, 1:-1] + images[:, 2:]
    box = rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]
    smooth = (box + 4.0 * images[:, 1:-1, 1:-1]) / 13.0
    smooth = tf.pad(smooth, [[0, 0], [1, 1], [1, 1], [0, 0]])
    shape = tf.shape(images)
    rows = tf.range(shape[1])[:, None]
    cols = tf.range(shape[2])[None, :]
    interior = (rows > 0) & (rows < shape[1] - 1) & (cols > 0) & (cols < shape[2] - 1)
    return tf.where(interior[None, :, :, None], smooth, images)


def lookup_pixels(images: tf.Tensor, tables: tf.Tensor) -> tf.Tensor:
    """Each pixel of `images` [B,H,W,3] (integers in [0, 255]) through its image's and
    channel's entry of `tables` [B,3,256]."""
    shape = tf.shape(images)
    index = tf.cast(images, tf.int32) + tf.range(3) * 256
    out = tf.gather(tf.reshape(tables, [shape[0], 768]), tf.reshape(index, [shape[0], -1]),
                    batch_dims=1)
    return tf.reshape(out, shape)


def _per_image(values: tf.Tensor) -> tf.Tensor:
    return values[:, None, None, None]


@fused
def flip_pixels(images: tf.Tensor, flip: tf.Tensor) -> tf.Tensor:
    """Each image [B,H,W,C] mirrored left-right where its flip [B] (bool) is set."""
    images = tf.cast(images, tf.float32)
    return tf.where(_per_image(flip), tf.reverse(images, axis=[2]), images)


def make_flip():
    """Horizontal flip of each image with probability 1/2."""

    def op(images, labels, seed):
        return flip_pixels(images, uniform([tf.shape(images)[0]], seed) < 0.5), labels

    return op


@fused
def jitter_pixels(images: tf.Tensor, brightness: tf.Tensor, contrast: tf.Tensor,
                  saturation: tf.Tensor) -> tf.Tensor:
    """Brightness, then contrast, then saturation, each factor [B] per image, as torchvision."""
    images = tf.clip_by_value(tf.cast(images, tf.float32) * _per_image(brightness), 0.0, 255.0)
    mean = tf.reduce_mean(grayscale(images), axis=[1, 2, 3], keepdims=True)
    images = blend(mean, images, _per_image(contrast))
    return blend(grayscale(images), images, _per_image(saturation))


def make_jitter(strength: float):
    """timm/torchvision ColorJitter(b=c=s=strength, hue=0): factors in [1-s, 1+s] per image."""

    def op(images, labels, seed):
        batch = [tf.shape(images)[0]]
        factors = [uniform(batch, s, 1.0 - strength, 1.0 + strength)
                   for s in tf.unstack(split_seed(seed, 3))]
        return jitter_pixels(images, *factors), labels

    return op


def byte_noise(shape, seed: tf.Tensor) -> tf.Tensor:
    """Independent uniform integers in [0, 255] (uint8) of `shape`.

    Each 32-bit Philox draw gives four of them, so this costs a quarter of a
    float draw per value: uniform noise over the whole batch was most of the
    erase op's time.
    """
    count = tf.reduce_prod(shape)
    words = tf.random.stateless_uniform([(count + 3) // 4], seed, minval=None, maxval=None,
                                        dtype=tf.uint32, alg=RNG_ALG)
    return tf.reshape(tf.reshape(tf.bitcast(words, tf.uint8), [-1])[:count], shape)


@fused
def erase_pixels(images: tf.Tensor, noise: tf.Tensor, slot: tf.Tensor,
                 boxes: tf.Tensor) -> tf.Tensor:
    """Pixels inside each image's box [B, 4] (top, left, bottom, right; float, end
    exclusive) replaced by its noise image `noise[slot]` (noise uint8 [N, H, W, C],
    slot int32 [B])."""
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    rows = tf.cast(tf.range(shape[1]), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(shape[2]), tf.float32)[None, None, :]
    top, left, bottom, right = (boxes[:, i, None, None] for i in range(4))
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    return tf.where(inside[..., None], tf.cast(tf.gather(noise, slot), tf.float32), images)


def _power_of_two_at_least(count: tf.Tensor) -> tf.Tensor:
    buckets = tf.constant([2 ** i for i in range(31)])
    return tf.reduce_min(tf.where(buckets >= count, buckets, buckets[-1]))


def make_erase(probability: float, min_area: float = 0.02, max_area: float = 1 / 3,
               min_aspect: float = 0.3):
    """timm RandomErasing(mode="pixel"): one box of uniform noise per image with `probability`.

    Box area is a fraction in [min_area, max_area] of the image, its aspect ratio
    log-uniform in [min_aspect, 1/min_aspect]; the box is clipped to the image
    (timm retries instead; clipping keeps it one vectorised draw). An image that is
    not erased gets an empty box.
    """

    def op(images, labels, seed):
        shape = tf.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        h_f, w_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
        seeds = split_seed(seed, 6)
        area = uniform([batch], seeds[0], min_area, max_area) * h_f * w_f
        aspect = tf.exp(uniform([batch], seeds[1], math.log(min_aspect), -math.log(min_aspect)))
        box_h = tf.minimum(tf.round(tf.sqrt(area * aspect)), h_f)
        box_w = tf.minimum(tf.round(tf.sqrt(area / aspect)), w_f)
        top = tf.floor(uniform([batch], seeds[2]) * (h_f - box_h + 1.0))
        left = tf.floor(uniform([batch], seeds[3]) * (w_f - box_w + 1.0))
        erase = uniform([batch], seeds[4]) < probability
        box_h, box_w = tf.where(erase, box_h, 0.0), tf.where(erase, box_w, 0.0)
        boxes = tf.stack([top, left, top + box_h, left + box_w], axis=1)
        # Noise only for the erased images (the k-th erased image reads noise image k):
        # drawing it for the whole batch was half the op's time. The count is padded to a
        # power of two, so XLA compiles a few shapes; under XLA (static shapes) it is B.
        slot = tf.cumsum(tf.cast(erase, tf.int32), exclusive=True)
        if geo.in_xla_context():
            count = batch
        else:
            count = _power_of_two_at_least(tf.reduce_sum(tf.cast(erase, tf.int32)))
        slot = tf.minimum(slot, count - 1)
        noise = byte_noise(tf.concat([[count], shape[1:]], axis=0), seeds[5])
        return erase_pixels(images, noise, slot, boxes), labels

    return op


def make_rotate_matrix(degrees: float):
    """Affine stage: rotation by an angle uniform in [-degrees, degrees] per image."""
    radians = degrees * math.pi / 180.0

    def matrix(batch, height, width, seed):
        return geo.rotation_matrix(uniform([batch], seed, -radians, radians), height, width)

    return matrix


def make_translate_matrix(fraction: float):
    """Affine stage: shift by up to `fraction` of the height/width per axis per image."""

    def matrix(batch, height, width, seed):
        seeds = split_seed(seed, 2)
        dx = uniform([batch], seeds[0], -fraction, fraction) * tf.cast(width, tf.float32)
        dy = uniform([batch], seeds[1], -fraction, fraction) * tf.cast(height, tf.float32)
        return geo.translation_matrix(dx, dy)

    return matrix


def make_zoom_matrix(fraction: float):
    """Affine stage: zoom factor uniform in [1-fraction, 1+fraction] per image."""

    def matrix(batch, height, width, seed):
        return geo.zoom_matrix(uniform([batch], seed, 1.0 - fraction, 1.0 + fraction),
                               height, width)

    return matrix
