"""The XLA-fused ops equal their op-by-op reference formulations, on values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from visiontrain.augment import mix, ops

SEED = tf.constant([4, 2], tf.int64)


def _images(batch=6, height=9, width=7, seed=0):
    return tf.floor(tf.random.stateless_uniform([batch, height, width, 3], [seed, 1], 0, 256))


def _labels(batch=6, classes=5):
    return tf.one_hot(tf.range(batch) % classes, classes)


def test_flip_equals_per_image_numpy_flip_and_the_masked_where():
    images = _images()
    out, _ = ops.make_flip()(images, _labels(), SEED)
    flip = (ops.uniform([6], SEED) < 0.5).numpy()
    expected = np.stack([x[:, ::-1] if f else x for x, f in zip(images.numpy(), flip)])
    np.testing.assert_array_equal(out, expected)
    # The formulation before fusing: a [B,1,1,1] mask broadcast by tf.where, op by op.
    reference = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
    np.testing.assert_array_equal(out, reference)
    assert 0 < flip.sum() < 6


def _jitter_reference(images, seed, strength):
    """make_jitter as it was written before fusing, op by op."""
    seeds = ops.split_seed(seed, 3)
    batch = [tf.shape(images)[0]]
    factors = [ops.uniform(batch, s, 1.0 - strength, 1.0 + strength)[:, None, None, None]
               for s in tf.unstack(seeds)]
    images = tf.clip_by_value(images * factors[0], 0.0, 255.0)
    mean = tf.reduce_mean(ops.grayscale(images), axis=[1, 2, 3], keepdims=True)
    images = ops.blend(mean, images, factors[1])
    return ops.blend(ops.grayscale(images), images, factors[2])


def test_jitter_equals_the_op_by_op_reference():
    images = _images()
    out, _ = ops.make_jitter(0.4)(images, _labels(), SEED)
    # XLA may sum the mean in another order: float32 round-off only.
    np.testing.assert_allclose(out, _jitter_reference(images, SEED, 0.4), atol=2e-3)
    assert float(tf.reduce_max(tf.abs(out - images))) > 1.0


def _erase_box_reference(shape, seed, probability, min_area=0.02, max_area=1 / 3,
                         min_aspect=0.3):
    """The erased-pixel mask [B,H,W] as make_erase computed it before fusing."""
    batch, height, width = shape[0], shape[1], shape[2]
    h_f, w_f = float(height), float(width)
    seeds = ops.split_seed(seed, 6)
    area = ops.uniform([batch], seeds[0], min_area, max_area) * h_f * w_f
    aspect = tf.exp(ops.uniform([batch], seeds[1], math.log(min_aspect), -math.log(min_aspect)))
    box_h = tf.minimum(tf.round(tf.sqrt(area * aspect)), h_f)
    box_w = tf.minimum(tf.round(tf.sqrt(area / aspect)), w_f)
    top = tf.floor(ops.uniform([batch], seeds[2]) * (h_f - box_h + 1.0))
    left = tf.floor(ops.uniform([batch], seeds[3]) * (w_f - box_w + 1.0))
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(width), tf.float32)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + box_h)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + box_w)[:, None, None]))
    return (inside & (ops.uniform([batch], seeds[4]) < probability)[:, None, None]).numpy()


@pytest.mark.parametrize("probability", [1.0, 0.5])
def test_erase_box_equals_the_reference_and_only_the_box_changes(probability):
    images = _images(batch=8, height=20, width=16) * 0 + 300.0  # no noise value equals 300
    out, _ = ops.make_erase(probability)(images, _labels(8), SEED)
    out = out.numpy()
    inside = _erase_box_reference([8, 20, 16], SEED, probability)
    assert inside.any() and (probability == 1.0 or not inside.all(axis=(1, 2)).all())
    np.testing.assert_array_equal(out[~inside], 300.0)
    noise = out[inside]
    assert (noise >= 0).all() and (noise <= 255).all() and (noise == np.floor(noise)).all()
    again, _ = ops.make_erase(probability)(images, _labels(8), SEED)
    np.testing.assert_array_equal(out, again)


def test_erased_images_each_get_their_own_noise():
    images = tf.fill([5, 24, 24, 3], 300.0)
    out = ops.make_erase(1.0, min_area=0.3, max_area=0.33, min_aspect=0.99)(
        images, _labels(5), SEED)[0].numpy()
    inside = out != 300.0
    for i in range(5):
        for j in range(i):
            both = inside[i] & inside[j]
            assert both.sum() > 50 and (out[i][both] != out[j][both]).mean() > 0.9


def test_byte_noise_is_uniform_bytes_reproducible_and_seeded():
    noise = ops.byte_noise(tf.constant([3, 50, 41, 3]), SEED)
    assert noise.dtype == tf.uint8 and noise.shape == (3, 50, 41, 3)
    values = noise.numpy().ravel()
    counts = np.bincount(values, minlength=256)
    assert (counts > 0).all() and abs(values.mean() - 127.5) < 2.0
    np.testing.assert_array_equal(noise, ops.byte_noise(tf.constant([3, 50, 41, 3]), SEED))
    other = ops.byte_noise(tf.constant([3, 50, 41, 3]), SEED + 1).numpy().ravel()
    assert (other != values).mean() > 0.9


@pytest.mark.parametrize("fn, args", [
    (ops.flip_pixels, lambda x: (tf.constant([True, False, True, False, False, True]),)),
    (ops.jitter_pixels, lambda x: tuple(tf.linspace(0.6, 1.4, 6) + d for d in (0., .1, -.1))),
    (ops.erase_pixels, lambda x: (ops.byte_noise(tf.constant([4, 9, 7, 3]), SEED),
                                  tf.constant([0, 3, 1, 2, 0, 3]),
                                  tf.constant([[1., 2., 5., 6.]] * 6))),
    (mix.mix_pixels, lambda x: (tf.constant([2, 7, 1, 5]), tf.constant(True), tf.constant(True),
                                tf.constant(0.3))),
    (mix.mix_pixels, lambda x: (tf.constant([2, 7, 1, 5]), tf.constant(False),
                                tf.constant(True), tf.constant(0.3))),
])
def test_fused_pixels_equal_their_reference_in_eager_graph_and_xla(fn, args):
    images = _images()
    extra = args(images)
    reference = fn.reference(images, *extra)
    np.testing.assert_allclose(fn(images, *extra), reference, atol=2e-3)
    np.testing.assert_allclose(tf.function(fn)(images, *extra), reference, atol=2e-3)
    # Traced inside a jit-compiled step, the op is part of the enclosing computation.
    np.testing.assert_allclose(tf.function(fn, jit_compile=True)(images, *extra), reference,
                               atol=2e-3)


@pytest.mark.parametrize("mixup_alpha, cutmix_alpha", [(0.4, 0.0), (0.0, 1.0)])
def test_mix_equals_the_reference_blend_with_its_label_weight(mixup_alpha, cutmix_alpha):
    images, labels = _images(), _labels(classes=6)
    # A seed whose CutMix box is not clipped away, so the check is not vacuous.
    seed = tf.constant([4, 4], tf.int64)
    out, mixed = mix.make_mix(mixup_alpha, cutmix_alpha)(images, labels, seed)
    mirror = tf.reverse(images, axis=[0]).numpy()
    lam = float(mixed[0, 0])  # image 0 is class 0, its mirror (image 5) class 5
    if cutmix_alpha:
        from_mirror = np.all(out.numpy() == mirror, axis=-1) & np.any(images != mirror, axis=-1)
        kept = np.all(out.numpy() == images.numpy(), axis=-1)
        assert (from_mirror | kept).all()
        np.testing.assert_allclose(from_mirror[0].mean(), 1 - lam, atol=1e-6)
    else:
        np.testing.assert_allclose(out, lam * images + (1 - lam) * mirror, atol=1e-3)
    assert 0 < lam < 1
