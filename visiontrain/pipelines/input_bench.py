"""`visiontrain-bench input`: our training input pipeline against three baselines.

Every configuration runs in its own subprocess (so peak RSS and thread pools are
its own), on the same shards or folder, after one warm-up pass; the figure is the
median of `repeats` timed passes. Ratios are ours / baseline:

- R_ceiling: TFRecord read + full `decode_jpeg` only, parallel - what the cores can decode.
- R_naive: sequential map, full decode then random-resized crop, no prefetch.
- R_keras: `keras.utils.image_dataset_from_directory` + RandomCrop + RandomFlip layers in
  tf.data (Keras 3 has no RandomResizedCrop layer; resize-then-crop is its recipe).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

CONFIGS = ("ours", "ceiling", "naive", "keras")


def write_photo_like_jpegs(out_dir: str, num_images: int, size=(500, 375), seed: int = 0):
    """Writes `num_images` JPEGs over two class folders: gradients, shapes and noise.

    Smooth content with edges compresses like a photo (tens of KB at quality 90);
    pure noise would make JPEGs several times larger and decoding unrealistically slow.
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for index in range(num_images):
        folder = os.path.join(out_dir, f"class{index % 2}")
        os.makedirs(folder, exist_ok=True)
        a, b, c = rng.uniform(-1, 1, 3)
        base = 128 + 100 * np.sin(a * xx / 60 + b * yy / 45 + c * np.arange(3)[:, None, None])
        pixels = np.moveaxis(base, 0, -1) + rng.normal(0, 6, (height, width, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = rng.integers(0, width), rng.integers(0, height)
            box = [int(x0), int(y0), int(x0 + rng.integers(1, 1 + width // 2)),
                   int(y0 + rng.integers(1, 1 + height // 2))]
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        image.save(os.path.join(folder, f"{index:05d}.jpg"), quality=90)


def _dataset(name: str, shards_dir: str, images_dir: str, image_size: int, batch: int, epoch: int):
    if name not in CONFIGS:
        raise ValueError(f"unknown input benchmark configuration {name!r}; known: {CONFIGS}")
    import tensorflow as tf

    from visiontrain.config import DataConfig
    from visiontrain.pipelines import datasets, manifest, preprocess, schema

    shards = datasets.split_shards(shards_dir, manifest.load_manifest(shards_dir), "train")
    config = DataConfig(data_dir=shards_dir, image_size=image_size, seed=epoch)
    if name == "ours":
        records = sum(s["records"] for s in shards) // batch * batch
        return datasets.make_train_dataset(
            shards, config, epoch=epoch, batch_size=batch, records_per_epoch=records
        )
    files = [s["path"] for s in shards]
    if name == "ceiling":
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=len(files), num_parallel_calls=tf.data.AUTOTUNE
        )
        decoded = records.map(
            lambda r: tf.shape(tf.io.decode_jpeg(schema.parse_example(r)[schema.ENCODED]))[0],
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return decoded.batch(batch).prefetch(2)
    if name == "naive":

        def crop(serialized):
            image = tf.io.decode_jpeg(schema.parse_example(serialized)[schema.ENCODED], 3)
            seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
            window = preprocess.random_crop_window(
                tf.shape(image)[:2], seed, (0.08, 1.0), (3 / 4, 4 / 3)
            )
            cropped = tf.image.crop_to_bounding_box(image, *tf.unstack(window))
            return preprocess.resize_uint8(cropped, image_size)

        return tf.data.TFRecordDataset(files).map(crop).batch(batch)
    import keras

    load = int(round(image_size / 0.875))
    augment = keras.Sequential(
        [keras.layers.RandomCrop(image_size, image_size), keras.layers.RandomFlip("horizontal")]
    )
    folder = keras.utils.image_dataset_from_directory(
        images_dir, image_size=(load, load), batch_size=batch, shuffle=True, seed=epoch,
        verbose=False,
    )
    return folder.map(
        lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
    ).prefetch(tf.data.AUTOTUNE)


def run_config(
    name: str, shards_dir: str, images_dir: str, image_size: int, batch: int, repeats: int
) -> dict[str, Any]:
    """One configuration, in this process: a warm-up pass then `repeats` timed passes."""
    rates = []
    for epoch in range(repeats + 1):
        dataset = _dataset(name, shards_dir, images_dir, image_size, batch, epoch)
        start, count = time.perf_counter(), 0
        for element in dataset:
            count += int((element[0] if isinstance(element, tuple) else element).shape[0])
        if epoch:
            rates.append(count / (time.perf_counter() - start))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"img_per_s": statistics.median(rates), "peak_rss_mb": peak_kb / 1024}


def _run_in_subprocess(name: str, *args) -> dict[str, Any]:
    code = (
        "import json, sys; from visiontrain.pipelines import input_bench as b; "
        "print(json.dumps(b.run_config(*json.loads(sys.argv[1]))))"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps([name, *args])],
        capture_output=True, text=True, env=env, check=False,
    )
    if done.returncode:
        raise RuntimeError(f"input benchmark {name!r} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_input(
    images_dir: str | None = None,
    num_images: int = 2000,
    *,
    image_size: int = 224,
    batch_size: int = 64,
    repeats: int = 3,
    work_dir: str | None = None,
    as_json: bool = False,
) -> dict[str, Any]:
    """Benchmarks the training input pipeline against the ceiling, naive and Keras baselines.

    Args:
      images_dir: a class-per-folder tree of JPEGs; None generates `num_images`
        photo-like 500x375 JPEGs.
      num_images: how many images to generate when `images_dir` is None.
      image_size: output side of the crops.
      batch_size: batch size of every configuration.
      repeats: timed passes per configuration (the median is reported).
      work_dir: where generated images and shards go (a temp dir by default).
      as_json: print one JSON object instead of the table.

    Returns:
      {"img_per_s": {config: median}, "peak_rss_mb": {config: MB},
       "R_ceiling", "R_naive", "R_keras", "num_images", "image_size"}.
    """
    from visiontrain.pipelines import make_tfrecords

    work_dir = work_dir or tempfile.mkdtemp(prefix="input_bench_")
    if images_dir is None:
        images_dir = os.path.join(work_dir, "images")
        write_photo_like_jpegs(images_dir, num_images)
    shards_dir = os.path.join(work_dir, "shards")
    manifest = make_tfrecords.build(
        make_tfrecords.ConvertConfig(
            source=images_dir, output=shards_dir, val_fraction=0.05, num_shards=8
        )
    )
    runs = {
        name: _run_in_subprocess(name, shards_dir, images_dir, image_size, batch_size, repeats)
        for name in CONFIGS
    }
    rate = {name: run["img_per_s"] for name, run in runs.items()}
    result = {
        "img_per_s": rate,
        "peak_rss_mb": {name: run["peak_rss_mb"] for name, run in runs.items()},
        "R_ceiling": rate["ours"] / rate["ceiling"],
        "R_naive": rate["ours"] / rate["naive"],
        "R_keras": rate["ours"] / rate["keras"],
        "num_images": manifest["splits"]["train"]["num_records"],
        "image_size": image_size,
    }
    if as_json:
        print(json.dumps(result))
    else:
        for name in CONFIGS:
            print(f"{name:>8}: {rate[name]:8.1f} img/s  peak RSS "
                  f"{result['peak_rss_mb'][name]:7.1f} MB")
        print(f"R_ceiling {result['R_ceiling']:.2f} (target >= 0.85)  "
              f"R_naive {result['R_naive']:.2f} (>= 2)  R_keras {result['R_keras']:.2f} (>= 1.2)")
    return result
