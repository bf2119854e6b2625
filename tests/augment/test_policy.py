"""Tests for on-device augmentation: policies, per-image ops, mixing, seeding, XLA."""

import numpy as np
import pytest
import tensorflow as tf

from visiontrain.augment import policy as augment
from visiontrain.augment.policy import (
    PRESETS,
    augment_seed,
    check_xla,
    make_augmenter,
    parse_policy,
    register_op,
)

NUM_CLASSES = 5
SINGLE_OPS = ["flip", "rotate:20", "translate:0.2", "zoom:0.3", "randaugment:2:9", "jitter:0.4",
              "erase:1.0", "mixup:0.4", "cutmix:1.0", "mixup:0.2,cutmix:1.0"]


def _batch(size=16, batch=6, seed=0):
    images = tf.random.stateless_uniform([batch, size, size, 3], [seed, 1], 0, 256)
    labels = tf.one_hot(tf.range(batch) % NUM_CLASSES, NUM_CLASSES)
    return tf.floor(images), labels


@pytest.mark.parametrize("spec", SINGLE_OPS + ["strong", "imagenet"])
def test_op_keeps_shape_dtype_range_and_label_mass(spec):
    images, labels = _batch()
    out, out_labels = make_augmenter(spec, NUM_CLASSES, seed=3)(images, labels, step=7)
    assert out.shape == images.shape and out.dtype == tf.float32
    assert out_labels.shape == labels.shape and out_labels.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 255.0
    np.testing.assert_allclose(tf.reduce_sum(out_labels, axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(out, images)


@pytest.mark.parametrize("spec", SINGLE_OPS + ["strong"])
def test_eval_mode_is_identity(spec):
    images, labels = _batch()
    out, out_labels = make_augmenter(spec, NUM_CLASSES, seed=3)(images, labels, training=False)
    assert out is images and out_labels is labels


def test_presets_parse_and_none_is_identity():
    for name in PRESETS:
        parse_policy(name)
    images, labels = _batch()
    out, _ = make_augmenter("none", NUM_CLASSES, 0)(images, labels, step=1)
    np.testing.assert_array_equal(out, images)


def test_parse_fills_defaults_and_orders_canonically():
    policy = parse_policy("mixup,rotate:10,flip")
    assert [op.name for op in policy] == ["flip", "rotate", "mixup"]
    assert policy[2].args == (0.2, 1.0)


@pytest.mark.parametrize("spec, message", [
    ("flop", "Known ops: flip"),
    ("flip:1", "at most 0 argument"),
    ("randaugment:2:9:1", "at most 2 argument"),
    ("randaugment:2:11", "Received: magnitude=11"),
    ("randaugment:1.5", "Received: num_ops=1.5"),
    ("mixup:0", "Received: alpha=0"),
    ("erase:x", "Received: probability='x'"),
    ("flip,flip", "repeated=['flip']"),
])
def test_policy_errors_are_clear(spec, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_policy(spec)


def test_duplicate_registration_and_bad_inputs_raise():
    with pytest.raises(ValueError, match="already registered"):
        register_op("flip", lambda: None, stage=0)
    with pytest.raises(ValueError, match="num_classes=0"):
        make_augmenter("flip", 0, 0)
    with pytest.raises(ValueError, match=r"Received: shape=\(2, 8, 8\)"):
        make_augmenter("flip", NUM_CLASSES, 0)(tf.zeros([2, 8, 8]), tf.zeros([2, NUM_CLASSES]))


def test_randaugment_chooses_ops_per_image():
    image = tf.floor(tf.random.stateless_uniform([1, 16, 16, 3], [4, 2], 0, 256))
    images = tf.tile(image, [256, 1, 1, 1])
    labels = tf.one_hot(tf.zeros([256], tf.int32), NUM_CLASSES)
    out, _ = make_augmenter("randaugment:1:9", NUM_CLASSES, 0)(images, labels, step=0)
    distinct = {np.asarray(x).tobytes() for x in out}
    # One op per batch (keras.layers.RandAugment's behaviour) with a random sign would give
    # at most 2 results; 14 ops x 2 signs per image give many (sign-free ops coincide).
    assert len(distinct) >= 15


def _two_constant_images():
    images = tf.stack([tf.zeros([16, 16, 3]), tf.fill([16, 16, 3], 255.0)])
    return images, tf.one_hot([0, 1], 2)


@pytest.mark.parametrize("step", range(6))
def test_cutmix_label_weight_is_exact_box_area(step):
    images, labels = _two_constant_images()
    out, out_labels = make_augmenter("cutmix:1.0", 2, 0)(images, labels, step=step)
    from_second = float(tf.reduce_mean(out[0])) / 255.0
    assert from_second == pytest.approx(float(out_labels[0, 1]), abs=1e-6)
    assert float(out_labels[1, 0]) == pytest.approx(from_second, abs=1e-6)
    assert set(np.unique(out[0])) <= {0.0, 255.0}


@pytest.mark.parametrize("step", range(4))
def test_mixup_pixel_equals_label_weight(step):
    images, labels = _two_constant_images()
    out, out_labels = make_augmenter("mixup:0.4", 2, 0)(images, labels, step=step)
    np.testing.assert_allclose(out[0] / 255.0, float(out_labels[0, 1]), atol=1e-5)
    np.testing.assert_allclose(tf.reduce_sum(out_labels, 1), 1.0, atol=1e-6)


def test_switch_uses_both_mixup_and_cutmix():
    images, labels = _two_constant_images()
    aug = make_augmenter("mixup:0.4,cutmix:1.0", 2, 0)
    kinds = set()
    for step in range(20):
        out, _ = aug(images, labels, step=step)
        values = set(np.unique(out[0]).tolist())
        kinds.add("cutmix" if values <= {0.0, 255.0} else "mixup")
    assert kinds == {"cutmix", "mixup"}


def test_same_seed_reproduces_and_replicas_differ():
    images, labels = _batch()
    aug = make_augmenter("strong", NUM_CLASSES, seed=11)
    first, _ = aug(images, labels, step=5, replica_id=0)
    again, _ = make_augmenter("strong", NUM_CLASSES, seed=11)(images, labels, step=5, replica_id=0)
    other_replica, _ = aug(images, labels, step=5, replica_id=1)
    other_step, _ = aug(images, labels, step=6, replica_id=0)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other_replica)
    assert not np.array_equal(first, other_step)
    np.testing.assert_array_equal(augment_seed(1, 2, 3), augment_seed(1, 2, 3))


def test_works_in_tf_function_and_dataset_map():
    images, labels = _batch()
    aug = make_augmenter("strong", NUM_CLASSES, seed=2)
    eager, _ = aug(images, labels, step=3)
    graph, _ = tf.function(lambda x, y: aug(x, y, step=3))(images, labels)
    np.testing.assert_allclose(graph, eager, atol=1e-3)
    mapped = tf.data.Dataset.from_tensors((images, labels)).map(lambda x, y: aug(x, y, step=3))
    np.testing.assert_allclose(next(iter(mapped))[0], eager, atol=1e-3)


def test_check_xla_passes_on_all_ops_and_xla_matches_eager():
    aug = make_augmenter("flip,rotate:15,translate:0.1,zoom:0.2,randaugment:2:9,jitter:0.4,"
                         "erase:0.25,mixup:0.2,cutmix:1.0", NUM_CLASSES, seed=0)
    check_xla(aug, image_size=16)
    images, labels = _batch()
    eager, _ = aug(images, labels, step=1)
    compiled, _ = tf.function(lambda x, y: aug(x, y, step=1), jit_compile=True)(images, labels)
    # Pinned RNG: same draws; bilinear gathers vs the native kernel differ by rounding only.
    assert float(tf.reduce_mean(tf.cast(tf.abs(compiled - eager) > 1.0, tf.float32))) < 0.01


def test_check_xla_names_the_failing_op():
    aug = make_augmenter("flip", NUM_CLASSES, 0)
    # The kernel behind keras.layers.RandomRotation: no XLA kernel on TF 2.21.
    aug.stages = [("native_rotate", lambda x, y, s: (tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=tf.tile([[1.0, 0, 0, 0, 1, 0, 0, 0]], [2, 1]),
        output_shape=tf.shape(x)[1:3], fill_value=0.0, interpolation="BILINEAR"), y))]
    with pytest.raises(ValueError, match="'native_rotate' cannot be compiled with XLA"):
        check_xla(aug, image_size=8)


def test_affine_warp_identity_is_exact():
    images, _ = _batch()
    eye = tf.eye(3, batch_shape=[6])
    np.testing.assert_array_equal(augment.geo.affine_warp(images, eye), images)
    xla = tf.function(lambda x: augment.geo.affine_warp(x, eye), jit_compile=True)(images)
    np.testing.assert_array_equal(xla, images)


@pytest.mark.parametrize("preset", ["light", "imagenet", "strong"])
def test_a_uint8_batch_augments_exactly_as_its_float_cast(preset):
    """The train step hands the augmenter its uint8 batch (the first op casts it in its
    own pass): the result must be what the float32 batch gives, bit for bit."""
    images, labels = _batch()
    pixels = tf.cast(tf.round(images), tf.uint8)
    aug = make_augmenter(preset, NUM_CLASSES, seed=4)
    from_uint8, mixed_uint8 = aug(pixels, labels, step=7, replica_id=1)
    from_float, mixed_float = aug(tf.cast(pixels, tf.float32), labels, step=7, replica_id=1)
    assert from_uint8.dtype == tf.float32
    np.testing.assert_array_equal(from_uint8, from_float)
    np.testing.assert_array_equal(mixed_uint8, mixed_float)


def test_other_image_dtypes_are_refused_with_the_dtype():
    images, labels = _batch()
    with pytest.raises(ValueError, match="uint8 or float32 images. Received: dtype=int32"):
        make_augmenter("flip", NUM_CLASSES)(tf.cast(images, tf.int32), labels, step=1)
