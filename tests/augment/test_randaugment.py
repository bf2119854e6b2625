"""Routed RandAugment (each image runs only its own op) equals the dense path."""

import numpy as np
import pytest
import tensorflow as tf

from visiontrain.augment import randaugment
from visiontrain.augment.randaugment import OPS, make_randaugment, routed_slot


def _images(batch=12, seed=0):
    return tf.random.stateless_uniform([batch, 12, 10, 3], [seed, 3], 0, 256)


@pytest.mark.parametrize("num_ops, seed", [(1, 0), (2, 1), (3, 2)])
def test_routed_equals_dense_for_the_same_seed(num_ops, seed):
    images = _images(batch=24, seed=seed)
    key = tf.constant([seed, 9], tf.int64)
    routed = make_randaugment(num_ops, 9)(images, None, key)[0]
    dense = make_randaugment(num_ops, 9, dense=True)(images, None, key)[0]
    np.testing.assert_array_equal(routed, dense)
    assert not np.array_equal(routed, images)


@pytest.mark.parametrize("name", OPS)
def test_each_op_routed_equals_dense(name):
    images = _images(batch=4)
    op_index = tf.fill([4], OPS.index(name))
    sign = tf.constant([1.0, -1.0, 1.0, -1.0])
    routed = routed_slot(images, op_index, sign, 0.9)
    dense = randaugment._dense_slot(images, op_index, sign, 0.9)
    np.testing.assert_array_equal(routed, dense)


def test_routed_handles_empty_groups_and_a_single_image():
    images = _images(batch=1)
    out = routed_slot(images, tf.constant([OPS.index("solarize")]), tf.constant([1.0]), 1.0)
    assert out.shape == images.shape
    np.testing.assert_array_equal(out, tf.where(tf.round(images) >= 0.0, 255.0 - tf.round(images),
                                                0.0))


def test_routed_in_tf_function_and_dataset_map_matches_eager():
    images = _images()
    key = tf.constant([4, 4], tf.int64)
    op = make_randaugment(2, 7)
    eager = op(images, None, key)[0]
    graph = tf.function(lambda x: op(x, None, key)[0])(images)
    mapped = next(iter(tf.data.Dataset.from_tensors(images).map(lambda x: op(x, None, key)[0])))
    np.testing.assert_array_equal(graph, eager)
    np.testing.assert_array_equal(mapped, eager)


def test_xla_falls_back_to_dense():
    images = _images(batch=4)
    key = tf.constant([1, 1], tf.int64)
    # dynamic_partition has no XLA kernel: compiling at all proves the fallback.
    compiled = tf.function(lambda x: make_randaugment(2, 9)(x, None, key)[0],
                           jit_compile=True)(images)
    dense = tf.function(lambda x: make_randaugment(2, 9, dense=True)(x, None, key)[0],
                        jit_compile=True)(images)
    np.testing.assert_array_equal(compiled, dense)


@pytest.mark.slow
def test_bench_figures_are_computed_on_tiny_inputs():
    from visiontrain.bench.augment import (
        bench_input_pipeline,
        bench_randaugment,
        bench_step_overhead,
    )

    figures = bench_randaugment(image_size=16, batch=4, repeats=1)
    figures.update(bench_input_pipeline(image_size=32, batch=4, batches=1, repeats=1))
    figures.update(bench_step_overhead(image_size=32, batch=2, repeats=1,
                                       model_name="small_cnn"))
    for key in ("R_randaugment", "step_overhead_imagenet", "input_throughput_ratio",
                "randaugment_keras_img_s", "input_img_s_in_step", "step_s_none"):
        assert figures[key] > 0, key


def test_sharpness_is_the_same_pixels_routed_dense_and_under_xla():
    # One level apart on about 1 pixel in 8,000 when the smoothing was a depthwise
    # convolution, which XLA sums in another order: this many pixels catch it.
    images = tf.cast(tf.random.stateless_uniform([16, 64, 64, 3], [5, 5], 0, 256), tf.uint8)
    op_index = tf.fill([16], OPS.index("sharpness"))
    sign = tf.where(tf.range(16) % 2 == 0, 1.0, -1.0)
    routed = routed_slot(images, op_index, sign, 0.9)
    dense = randaugment._dense_slot(images, op_index, sign, 0.9)
    compiled = tf.function(lambda x: randaugment._dense_slot(x, op_index, sign, 0.9),
                           jit_compile=True)(images)
    np.testing.assert_array_equal(routed, dense)
    np.testing.assert_array_equal(routed, compiled)
    assert routed.dtype == tf.uint8
