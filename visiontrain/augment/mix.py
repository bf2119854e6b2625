"""MixUp and CutMix with soft labels, switched per batch as timm's `Mixup` does.

Keras 3.15 has `keras.layers.MixUp`/`CutMix`, but they draw from a SeedGenerator
(no (seed, step, replica) streams) and have no apply/switch probability; this
is timm's batch mode: one lambda per replica batch, each image mixed with its
mirror in the batch (`images[::-1]`), so no second batch is needed.
"""

from __future__ import annotations

import tensorflow as tf

from visiontrain.augment.ops import RNG_ALG, fused, split_seed, uniform

_GAMMA_TRIES = 16


def _gamma(alpha: tf.Tensor, seed: tf.Tensor, count: int) -> tf.Tensor:
    """`count` Gamma(alpha, 1) samples, Marsaglia-Tsang with a fixed number of tries.

    `tf.random.stateless_gamma` has no XLA kernel (StatelessRandomGammaV3), so the
    rejection sampler is unrolled: 16 candidates, the first accepted one wins
    (acceptance is > 95% per try for shape >= 1, so all failing is ~1e-21).
    Shapes below 1 use Gamma(a) = Gamma(a + 1) * U ** (1 / a).
    """
    seeds = split_seed(seed, 3)
    d = alpha + 1.0 - 1.0 / 3.0
    c = 1.0 / tf.sqrt(9.0 * d)
    z = tf.random.stateless_normal([count, _GAMMA_TRIES], seeds[0], alg=RNG_ALG)
    u = uniform([count, _GAMMA_TRIES], seeds[1], 1e-12, 1.0)
    v = (1.0 + c * z) ** 3
    log_v = tf.math.log(tf.maximum(v, 1e-12))
    accept = (v > 0) & (tf.math.log(u) < 0.5 * z * z + d - d * v + d * log_v)
    first = tf.argmax(tf.cast(accept, tf.int32), axis=1, output_type=tf.int32)
    sample = d * tf.gather(v, first, batch_dims=1)
    boost = uniform([count], seeds[2], 1e-12, 1.0) ** (1.0 / alpha)
    return sample * boost


def _beta(alpha: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """One Beta(alpha, alpha) sample from two gammas."""
    gammas = _gamma(alpha, seed, 2)
    return gammas[0] / tf.maximum(gammas[0] + gammas[1], 1e-12)


@fused
def mix_pixels(images: tf.Tensor, box: tf.Tensor, use_cutmix: tf.Tensor, apply: tf.Tensor,
               lam: tf.Tensor) -> tf.Tensor:
    """Each image mixed with its mirror in the batch: pasted inside `box` [4] (y0, y1,
    x0, x1; end exclusive) for CutMix, blended by `lam` for MixUp; kept if not `apply`."""
    shape = tf.shape(images)
    rows, cols = tf.range(shape[1])[:, None], tf.range(shape[2])[None, :]
    in_box = (rows >= box[0]) & (rows < box[1]) & (cols >= box[2]) & (cols < box[3])
    keep = tf.where(use_cutmix, 1.0 - tf.cast(in_box, tf.float32)[None, :, :, None], lam)
    keep = tf.where(apply, keep, 1.0)
    return images * keep + tf.reverse(images, axis=[0]) * (1.0 - keep)


def make_mix(mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, mixup_prob: float = 1.0,
             cutmix_prob: float = 1.0, switch_prob: float = 0.5):
    """Builds the batch op mixing images and their one-hot/soft labels.

    Args:
        mixup_alpha: Beta parameter of MixUp; 0 disables MixUp.
        cutmix_alpha: Beta parameter of CutMix; 0 disables CutMix.
        mixup_prob: probability a MixUp batch is actually mixed.
        cutmix_prob: probability a CutMix batch is actually mixed.
        switch_prob: with both enabled, probability that a batch uses CutMix.

    Returns:
        op(images, labels, seed) -> (images, labels); labels become
        lam * y + (1 - lam) * y_mirror, where for CutMix lam is the exact kept
        area after clipping the box to the image.
    """
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        raise ValueError("make_mix needs mixup_alpha > 0 or cutmix_alpha > 0. "
                         f"Received: mixup_alpha={mixup_alpha}, cutmix_alpha={cutmix_alpha}")
    if mixup_alpha <= 0:
        switch_prob = 1.0
    elif cutmix_alpha <= 0:
        switch_prob = 0.0

    def op(images, labels, seed):
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        seeds = split_seed(seed, 5)
        use_cutmix = uniform([], seeds[0]) < switch_prob
        apply = uniform([], seeds[1]) < tf.where(use_cutmix, cutmix_prob, mixup_prob)
        # A disabled op keeps alpha > 0 so the unused Beta draw stays finite.
        alpha = tf.where(use_cutmix, max(cutmix_alpha, 1e-3), max(mixup_alpha, 1e-3))
        lam = _beta(alpha, seeds[2])

        # CutMix box as in timm's rand_bbox: side ratio sqrt(1 - lam), centre uniform, clipped.
        ratio = tf.sqrt(1.0 - lam)
        cut_h = tf.cast(tf.cast(height, tf.float32) * ratio, tf.int32)
        cut_w = tf.cast(tf.cast(width, tf.float32) * ratio, tf.int32)
        cy = tf.random.stateless_uniform([], seeds[3], 0, height, dtype=tf.int32, alg=RNG_ALG)
        cx = tf.random.stateless_uniform([], seeds[4], 0, width, dtype=tf.int32, alg=RNG_ALG)
        y0 = tf.clip_by_value(cy - cut_h // 2, 0, height)
        y1 = tf.clip_by_value(cy + cut_h // 2, 0, height)
        x0 = tf.clip_by_value(cx - cut_w // 2, 0, width)
        x1 = tf.clip_by_value(cx + cut_w // 2, 0, width)
        box_area = tf.cast((y1 - y0) * (x1 - x0), tf.float32)
        lam_cutmix = 1.0 - box_area / tf.cast(height * width, tf.float32)

        weight = tf.where(apply, tf.where(use_cutmix, lam_cutmix, lam), 1.0)
        mixed = mix_pixels(images, tf.stack([y0, y1, x0, x1]), use_cutmix, apply, lam)
        mixed_labels = weight * labels + (1.0 - weight) * tf.reverse(labels, axis=[0])
        return mixed, mixed_labels

    return op
