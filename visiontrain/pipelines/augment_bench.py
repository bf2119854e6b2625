"""Side-by-side throughput of our RandAugment against keras.layers.RandAugment.

Run: python -m visiontrain.pipelines.augment_bench
Both run in one process on the same batch, each inside a tf.function, so the
ratio is meaningful on a shared machine even when absolute numbers are not.
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf

from visiontrain.pipelines.randaugment import MAX_MAGNITUDE, make_randaugment


def _images_per_second(fn, images, repeats: int) -> float:
    fn(images)  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(images).numpy()
        best = min(best, time.perf_counter() - start)
    return int(images.shape[0]) / best


def bench_augment(image_size: int = 224, batch: int = 64, n: int = 2, m: float = 9,
                  repeats: int = 3) -> dict:
    """Measures img/s of ours and of keras RandAugment at the same N and M.

    Keras' `factor` is its magnitude on [0, 1], so M/10 matches our 0-10 scale.

    Returns:
        {"ours_img_s", "keras_img_s", "R_randaugment", "image_size", "batch", "n", "m"}.
    """
    images = tf.random.uniform([batch, image_size, image_size, 3], 0, 255)
    labels = tf.zeros([batch, 1])
    ours = make_randaugment(n, m)
    seed = tf.constant([0, 0], tf.int64)
    layer = keras.layers.RandAugment(value_range=(0, 255), num_ops=n,
                                     factor=m / MAX_MAGNITUDE, seed=0)
    ours_rate = _images_per_second(tf.function(lambda x: ours(x, labels, seed)[0]), images, repeats)
    keras_rate = _images_per_second(tf.function(lambda x: layer(x, training=True)), images,
                                    repeats)
    result = {"image_size": image_size, "batch": batch, "n": n, "m": m,
              "ours_img_s": ours_rate, "keras_img_s": keras_rate,
              "R_randaugment": ours_rate / keras_rate}
    print(f"RandAugment N={n} M={m:g} on {batch}x{image_size}x{image_size}x3")
    print(f"  {'ours (per-image ops)':<28}{ours_rate:>10.1f} img/s")
    print(f"  {'keras.layers.RandAugment':<28}{keras_rate:>10.1f} img/s")
    print(f"  {'R_randaugment':<28}{result['R_randaugment']:>10.2f}x")
    return result


if __name__ == "__main__":
    bench_augment()
