"""Side-by-side augmentation benchmarks: RandAugment speed, train-step and input overhead.

Run: python -m visiontrain.bench.augment [--accuracy]
Every figure is a ratio of two candidates timed in the same process, alternating
run by run and reporting medians, so it stays meaningful on a shared machine
even when the absolute img/s are not.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Callable

import keras
import tensorflow as tf

from visiontrain.augment.policy import make_augmenter
from visiontrain.augment.randaugment import MAX_MAGNITUDE, make_randaugment
from visiontrain.pipelines.preprocess import preprocess_for_train


def _alternating_medians(candidates: dict[str, Callable[[], object]],
                         repeats: int) -> dict[str, float]:
    """Median seconds per call of each candidate, warmed up, timed in alternation."""
    for fn in candidates.values():
        fn()
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_randaugment(image_size: int = 224, batch: int = 64, n: int = 2, m: float = 9,
                      repeats: int = 3) -> dict:
    """img/s of our per-image RandAugment (routed and dense) and keras.layers.RandAugment.

    Keras' `factor` is its magnitude on [0, 1], so M/10 matches our 0-10 scale.
    """
    images = tf.random.uniform([batch, image_size, image_size, 3], 0, 255)
    seed = tf.Variable([0, 0], dtype=tf.int64)
    routed, dense = make_randaugment(n, m), make_randaugment(n, m, dense=True)
    layer = keras.layers.RandAugment(value_range=(0, 255), num_ops=n,
                                     factor=m / MAX_MAGNITUDE, seed=0)

    def fresh(op):
        # A new seed per call, as in training, so no run is stuck on one cheap op draw.
        @tf.function
        def run(x):
            seed.assign_add([1, 0])
            return op(x, None, tf.identity(seed))[0]
        return lambda: run(images).numpy()

    keras_fn = tf.function(lambda x: layer(x, training=True))
    seconds = _alternating_medians({"ours": fresh(routed), "ours_dense": fresh(dense),
                                    "keras": lambda: keras_fn(images).numpy()}, repeats)
    rates = {name: batch / value for name, value in seconds.items()}
    return {"randaugment_ours_img_s": rates["ours"],
            "randaugment_ours_dense_img_s": rates["ours_dense"],
            "randaugment_keras_img_s": rates["keras"],
            "R_randaugment": rates["ours"] / rates["keras"],
            "R_randaugment_dense": rates["ours_dense"] / rates["keras"]}


def bench_step_overhead(preset: str = "imagenet", image_size: int = 224, batch: int = 8,
                        repeats: int = 3, model_name: str = "resnet50") -> dict:
    """ResNet-50 SGD train-step time with the preset applied in the step / without it."""
    from visiontrain.config import ModelConfig
    from visiontrain.models import build_model

    num_classes = 1000
    model = build_model(ModelConfig(name=model_name, num_classes=num_classes), image_size)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    augmenter = make_augmenter(preset, num_classes, seed=0)
    images = tf.cast(tf.random.uniform([batch, image_size, image_size, 3], 0, 256), tf.uint8)
    labels = tf.range(batch) % num_classes

    def make_step(augment: bool):
        @tf.function
        def step(images, labels):
            x = tf.cast(images, tf.float32)
            y = tf.one_hot(labels, num_classes)
            if augment:
                x, y = augmenter(x, y, training=True, step=optimizer.iterations)
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(y, logits))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss
        return lambda: step(images, labels).numpy()

    augment_only = tf.function(lambda x, y: augmenter(tf.cast(x, tf.float32), tf.one_hot(
        y, num_classes), training=True, step=optimizer.iterations)[0])
    seconds = _alternating_medians({"plain": make_step(False), "augmented": make_step(True),
                                    "augment_only": lambda: augment_only(images, labels).numpy()},
                                   repeats)
    # On a shared CPU a ResNet-50 step varies by more than the augmentation costs, so the
    # augmentation is also timed alone: 1 + its share of the plain step is the steadier figure.
    return {f"step_s_{preset}": seconds["augmented"], "step_s_none": seconds["plain"],
            f"step_overhead_{preset}": seconds["augmented"] / seconds["plain"],
            f"augment_s_{preset}": seconds["augment_only"],
            f"step_overhead_{preset}_from_parts": 1.0 + seconds["augment_only"] / seconds["plain"],
            "step_batch": batch}


def _synthetic_jpegs(count: int, size: int) -> tf.Tensor:
    """Smooth random images (JPEG-like content, not noise) encoded as JPEG strings."""
    coarse = tf.random.stateless_uniform([count, size // 16, size // 16, 3], [7, 7], 0, 255)
    images = tf.cast(tf.image.resize(coarse, [size, size]), tf.uint8)
    return tf.stack([tf.io.encode_jpeg(image, quality=90) for image in images])


def bench_input_pipeline(preset: str = "imagenet", image_size: int = 224, batch: int = 64,
                         batches: int = 6, repeats: int = 3) -> dict:
    """Host pipeline img/s: decode + random-resized crop only (augmentation in the step)
    versus the same pipeline with the preset in tf.data (`dataset.map(augment)`)."""
    augmenter = make_augmenter(preset, 1000, seed=0)
    encoded = _synthetic_jpegs(batch, image_size * 8 // 7)
    decode = tf.data.Dataset.from_tensor_slices(encoded).repeat().enumerate().map(
        lambda i, jpeg: preprocess_for_train(jpeg, tf.stack([i, 0]), image_size, (0.08, 1.0),
                                             (3 / 4, 4 / 3)),
        num_parallel_calls=tf.data.AUTOTUNE).batch(batch, drop_remainder=True)

    @tf.autograph.experimental.do_not_convert
    def augment(images):
        labels = tf.one_hot(tf.zeros([batch], tf.int32), 1000)
        return augmenter(tf.cast(images, tf.float32), labels, training=True)[0]

    pipelines = {"in_step": decode.prefetch(1),
                 "in_tf_data": decode.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
                 .prefetch(1)}

    def drain(dataset) -> float:
        # A fresh iterator each time: buffers filled while the other pipeline ran
        # would otherwise count as free throughput.
        iterator = iter(dataset)
        next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        return time.perf_counter() - start

    times = {name: [] for name in pipelines}
    for _ in range(repeats):
        for name, dataset in pipelines.items():
            times[name].append(drain(dataset))
    seconds = {name: statistics.median(values) for name, values in times.items()}
    rates = {name: batch * batches / value for name, value in seconds.items()}
    return {"input_img_s_in_step": rates["in_step"],
            f"input_img_s_tf_data_{preset}": rates["in_tf_data"],
            "input_throughput_ratio": rates["in_step"] / rates["in_tf_data"]}


def bench_augment(image_size: int = 224, batch: int = 64, n: int = 2, m: float = 9,
                  repeats: int = 3, step_batch: int = 8, accuracy: bool = False) -> dict:
    """All augmentation figures, as one flat dict (`print_table` shows it).

    Returns:
        R_randaugment (ours / keras.layers.RandAugment img/s, same N and M),
        step_overhead_imagenet (ResNet-50 step with / without in-step augmentation),
        input_throughput_ratio (host pipeline img/s when the imagenet preset runs
        in the step, so tf.data only decodes and crops, / img/s of the same
        pipeline with the preset mapped in tf.data),
        the raw img/s and seconds behind each ratio, and with `accuracy=True` the
        figures of `bench_augment_accuracy`.
    """
    result = {"image_size": image_size, "batch": batch, "n": n, "m": m}
    result.update(bench_randaugment(image_size, batch, n, m, repeats))
    result.update(bench_step_overhead("imagenet", image_size, step_batch, max(repeats, 5)))
    result.update(bench_input_pipeline("imagenet", image_size, batch, repeats=repeats))
    if accuracy:
        from visiontrain.bench.augment_accuracy import bench_augment_accuracy

        result.update(bench_augment_accuracy())
    return result


def print_table(result: dict) -> None:
    """The human-readable form of `bench_augment`'s result."""
    print(f"Augmentation benchmarks, {result['image_size']}x{result['image_size']}, "
          f"RandAugment N={result['n']} M={result['m']:g}")
    for key, value in result.items():
        print(f"  {key:<36}{value:>12.3f}" if isinstance(value, float) else
              f"  {key:<36}{value:>12}")


if __name__ == "__main__":
    print_table(bench_augment(accuracy="--accuracy" in sys.argv[1:]))
