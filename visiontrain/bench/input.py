"""`visiontrain-bench input`: our training input pipeline against its baselines and peers.

Every configuration runs in its own subprocess (so peak RSS and thread pools are
its own), on the same shards or folder, after one warm-up epoch, in interleaved
rounds (see `visiontrain.bench.harness`). `ours` is the training reader;
`ours_flip` adds what the train step does to each batch before the model with the
`light` preset (float32 cast and the flip of `visiontrain.augment`). Ratios are
ours / baseline, whole-pass (set-up included) and `_steady` (after the first batch):

- R_ceiling (and R_ceiling_flip, for ours_flip): TFRecord read + full `decode_jpeg`
  only, parallel - what the cores can decode.
- R_naive: sequential map, full decode then random-resized crop, no prefetch.
- R_keras: `keras.utils.image_dataset_from_directory` + RandomCrop + RandomFlip layers in
  tf.data (Keras 3 has no RandomResizedCrop layer; resize-then-crop is its recipe).
- R_dali: ours_flip against NVIDIA DALI's CPU pipeline with a flip, when installed
  (see `input_peers`).
"""

from __future__ import annotations

import functools
import os
import resource
import tempfile
import time
from typing import Any

import numpy as np

from visiontrain.bench import harness
from visiontrain.bench import input_peers as peers
from visiontrain.config import ConvertConfig

CONFIGS = ("ours", "ours_flip", "ceiling", "naive", "keras")


# Decode time follows the entropy-coded bytes, so generated images must be as
# detailed as real photos: ImageNet's training JPEGs average about 108 KB
# (138 GB / 1.28 M files); these average about 96 KB at quality 90.
_TEXTURE_SIGMA = 26.0


def write_photo_like_jpegs(out_dir: str, num_images: int, size=(500, 375), seed: int = 0):
    """Writes `num_images` JPEGs over two class folders: gradients, shapes and texture.

    The texture is luminance noise at two scales plus weak colour noise: photo detail
    sits mostly in luminance, and pure per-channel noise would compress unlike a photo.
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
        fine = rng.normal(0, _TEXTURE_SIGMA, (height, width))
        coarse = np.kron(
            rng.normal(0, _TEXTURE_SIGMA, (height // 2 + 1, width // 2 + 1)), np.ones((2, 2))
        )[:height, :width]
        texture = (fine + coarse)[:, :, None] + rng.normal(0, 3, (height, width, 3))
        pixels = np.clip(np.moveaxis(base, 0, -1) + texture, 0, 255)
        image = Image.fromarray(pixels.astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = rng.integers(0, width), rng.integers(0, height)
            box = [int(x0), int(y0), int(x0 + rng.integers(1, 1 + width // 2)),
                   int(y0 + rng.integers(1, 1 + height // 2))]
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        image.save(os.path.join(folder, f"{index:05d}.jpg"), quality=90)


def _dataset(name: str, shards_dir: str, images_dir: str, image_size: int, batch: int,
             epoch: int, epochs: int):
    """`epochs` epochs of configuration `name` in one dataset, as training reads them."""
    if name not in CONFIGS:
        raise ValueError(f"unknown input benchmark configuration {name!r}; known: {CONFIGS}")
    import tensorflow as tf

    from visiontrain.config import DataConfig
    from visiontrain.pipelines import datasets, preprocess, record_sources, schema

    source = record_sources.ShardSource(shards_dir)
    if name in ("ours", "ours_flip"):
        records = sum(f.records for f in source.files("train")) // batch * batch
        return datasets.make_train_dataset(
            source, DataConfig(data_dir=shards_dir, image_size=image_size), epoch=epoch,
            epochs=epochs, batch_size=batch, records_per_epoch=records,
        )
    files = [f.path for f in source.files("train")]
    if name == "ceiling":
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=len(files), num_parallel_calls=tf.data.AUTOTUNE
        )
        decoded = records.repeat(epochs).map(
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

        return tf.data.TFRecordDataset(files).repeat(epochs).map(crop).batch(batch)
    import keras

    load = int(round(image_size / 0.875))
    augment = keras.Sequential(
        [keras.layers.RandomCrop(image_size, image_size), keras.layers.RandomFlip("horizontal")]
    )
    folder = keras.utils.image_dataset_from_directory(
        images_dir, image_size=(load, load), batch_size=batch, shuffle=True, seed=epoch,
        verbose=False,
    )
    return folder.repeat(epochs).map(
        lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
    ).prefetch(tf.data.AUTOTUNE)


def _training_flip(name: str):
    """What the train step does to each batch before the model, or None: the `light` flip."""
    if name != "ours_flip":
        return None
    import tensorflow as tf

    from visiontrain.augment.policy import make_augmenter

    augmenter = make_augmenter("flip", num_classes=2)

    # One trace: the step counter comes in as a Python int and goes in as a tensor.
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8),
                                  tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int64)])
    def flip(images, labels, step):
        targets = tf.one_hot(labels, augmenter.num_classes)
        return augmenter(images, targets, step=step, replica_id=0)[0]

    return flip


def run_config(
    name: str, shards_dir: str, images_dir: str, image_size: int, batch: int, min_images: int
) -> dict[str, Any]:
    """One configuration, in this process: a warm-up epoch, then one timed pass.

    The timed pass is as many whole epochs as it takes to see `min_images` images,
    in one dataset as training reads them; its first batch carries the set-up (tracing,
    filling the shuffle buffer), which a training run pays once.
    """
    from visiontrain.pipelines import record_sources

    per_epoch = sum(f.records for f in record_sources.ShardSource(shards_dir).files("train"))
    epochs = max(1, -(-min_images // (per_epoch // batch * batch)))
    if name in peers.available():
        make = functools.partial(peers.available()[name], shards_dir, image_size, batch)
        step = None
    else:
        make = functools.partial(_dataset, name, shards_dir, images_dir, image_size, batch)
        step = _training_flip(name)
    _consume(make(0, 1), step)
    start = time.perf_counter()
    count, first = _consume(make(1, epochs), step)
    end = time.perf_counter()
    return {
        "img_per_s": count / (end - start),
        # After the first batch: the per-image cost without the dataset's set-up.
        "steady_img_per_s": (count - batch) / (end - first),
        "first_batch_s": first - start,
        "epochs": epochs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _consume(batches, step=None) -> tuple[int, float]:
    """(images seen, perf_counter time when the first batch arrived)."""
    count, first = 0, None
    for index, element in enumerate(batches):
        images = element[0] if isinstance(element, tuple) else element
        if step is not None:
            images = step(images, element[1], index)
        count += int(images.shape[0])
        first = first or time.perf_counter()
    return count, first


def bench_input(
    images_dir: str | None = None,
    num_images: int = 2000,
    *,
    image_size: int = 224,
    batch_size: int = 64,
    repeats: int = 3,
    min_images: int = 2000,
    work_dir: str | None = None,
) -> dict[str, Any]:
    """Benchmarks the training input pipeline against the ceiling, naive and Keras baselines.

    Args:
      images_dir: a class-per-folder tree of JPEGs; None generates `num_images`
        photo-like 500x375 JPEGs.
      num_images: how many images to generate when `images_dir` is None.
      image_size: output side of the crops.
      batch_size: batch size of every configuration.
      repeats: rounds; each runs every configuration once, in its own subprocess.
      min_images: images per timed pass (whole epochs; at least one).
      work_dir: where generated images and shards go (a temp dir by default).

    Returns:
      {"img_per_s": {config: median over rounds}, "steady_img_per_s" (after the first
       batch), "first_batch_s", "peak_rss_mb": {config: MB}, "configs", and the ratios
       (medians of the within-round ratios): "R_ceiling", "R_ceiling_flip", "R_naive",
       "R_keras" and "R_dali" (with DALI installed), each also as "..._steady";
       "num_images", "image_size", "rounds"}.
    """
    from visiontrain.pipelines import make_tfrecords

    work_dir = work_dir or tempfile.mkdtemp(prefix="input_bench_")
    if images_dir is None:
        images_dir = os.path.join(work_dir, "images")
        write_photo_like_jpegs(images_dir, num_images)
    shards_dir = os.path.join(work_dir, "shards")
    manifest = make_tfrecords.build(
        ConvertConfig(
            source=images_dir, output=shards_dir, val_fraction=0.05, num_shards=8
        )
    )
    names = CONFIGS + tuple(peers.available())
    runs = harness.interleaved_rounds(
        names, repeats,
        lambda name: harness.run_in_subprocess(
            __name__, [name, shards_dir, images_dir, image_size, batch_size, min_images]
        ),
    )
    result: dict[str, Any] = {
        key: {name: harness.median_of(runs[name], key) for name in names}
        for key in ("img_per_s", "steady_img_per_s", "first_batch_s", "peak_rss_mb")
    }
    pairs = {"R_ceiling": ("ours", "ceiling"), "R_ceiling_flip": ("ours_flip", "ceiling"),
             "R_naive": ("ours", "naive"), "R_keras": ("ours", "keras"),
             "R_dali": ("ours_flip", "dali")}
    for ratio, (ours, baseline) in pairs.items():
        if baseline in runs:
            result[ratio] = harness.paired_ratio(runs[ours], runs[baseline], "img_per_s")
            result[ratio + "_steady"] = harness.paired_ratio(
                runs[ours], runs[baseline], "steady_img_per_s")
    result.update(configs=list(names), num_images=manifest["splits"]["train"]["num_records"],
                  image_size=image_size, rounds=repeats)
    return result


def print_table(result: dict[str, Any]) -> None:
    """The human-readable form of `bench_input`'s result."""
    print(f"{result['num_images']} training images, {result['image_size']}px crops, "
          f"median of {result['rounds']} rounds")
    for name in result["configs"]:
        print(f"{name:>9}: {result['img_per_s'][name]:8.1f} img/s  "
              f"({result['steady_img_per_s'][name]:7.1f} after the first batch)  first batch "
              f"{result['first_batch_s'][name]:5.2f} s  peak RSS "
              f"{result['peak_rss_mb'][name]:7.1f} MB")
    targets = {"R_ceiling": ">= 0.9", "R_ceiling_flip": ">= 0.9", "R_naive": ">= 2",
               "R_keras": ">= 1.2", "R_dali": ">= 1.25"}
    for ratio, target in targets.items():
        if ratio in result:
            print(f"{ratio:>14} {result[ratio]:5.2f} whole pass, "
                  f"{result[ratio + '_steady']:5.2f} after the first batch  (target {target})")
