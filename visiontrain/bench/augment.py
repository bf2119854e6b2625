"""Side-by-side augmentation benchmarks: per-op cost, RandAugment speed, step and input overhead.

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

from visiontrain.augment import randaugment as ra
from visiontrain.augment.policy import make_augmenter
from visiontrain.augment.randaugment import MAX_MAGNITUDE, make_randaugment
from visiontrain.bench import harness
from visiontrain.pipelines.preprocess import preprocess_for_train

# The presets whose every op must cost at most OP_BUDGET of the host decode + crop per image.
OP_PRESETS = ("light", "imagenet", "strong")
OP_BUDGET = 0.10


# Calls before timing: the first traces; the next ones compile what XLA has not yet
# seen (RandAugment's routes compile per padded group size, once per run).
WARMUP_CALLS = 3


def _alternating_medians(candidates: dict[str, Callable[[], object]],
                         repeats: int) -> dict[str, float]:
    """Median seconds per call of each candidate, warmed up, timed in alternation."""
    for _ in range(WARMUP_CALLS):
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
    """img/s of our per-image RandAugment (routed and dense), keras.layers.RandAugment
    and, when installed, keras-cv's per-image `RandAugment`.

    Keras' `factor` and keras-cv's `magnitude` are the magnitude on [0, 1], so M/10
    matches our 0-10 scale; keras-cv runs with rate=1 and no magnitude noise, so it
    applies N ops to every image as ours does.
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
    candidates = {"ours": fresh(routed), "ours_dense": fresh(dense),
                  "keras": lambda: keras_fn(images).numpy()}
    kerascv_layer = _kerascv_randaugment(n, m)
    if kerascv_layer is not None:
        kerascv_fn = tf.function(lambda x: kerascv_layer(x, training=True))
        candidates["kerascv"] = lambda: kerascv_fn(images).numpy()
    seconds = _alternating_medians(candidates, repeats)
    rates = {name: batch / value for name, value in seconds.items()}
    result = {"randaugment_ours_img_s": rates["ours"],
              "randaugment_ours_dense_img_s": rates["ours_dense"],
              "randaugment_keras_img_s": rates["keras"],
              "R_randaugment": rates["ours"] / rates["keras"],
              "R_randaugment_dense": rates["ours_dense"] / rates["keras"]}
    if kerascv_layer is not None:
        result["randaugment_kerascv_img_s"] = rates["kerascv"]
        result["R_randaugment_kerascv"] = rates["ours"] / rates["kerascv"]
    return result


def _kerascv_randaugment(n: int, m: float):
    """keras-cv's RandAugment layer, or None (with a note) when keras-cv is not installed.

    keras-cv is frozen upstream (keras-hub succeeds it) and only this peer uses it, so it
    is the optional `[bench]` extra, imported here and nowhere else.
    """
    try:
        import keras_cv
    except ImportError:
        print("R_randaugment_kerascv skipped: keras-cv is not installed "
              "(pip install 'visiontrain[bench]').", file=sys.stderr)
        return None
    return keras_cv.layers.RandAugment(value_range=(0, 255), augmentations_per_image=n,
                                       magnitude=m / MAX_MAGNITUDE, magnitude_stddev=0.0,
                                       rate=1.0, seed=0)


def preset_op_rows(n_classes: int = 10) -> dict[str, Callable]:
    """Every stage the `OP_PRESETS` run, then each RandAugment op: row name -> op.

    A stage is what the train step runs as one op (MixUp and CutMix share one); it gets
    the batch as the augmenter gives it a first stage, uint8 when the op casts it itself,
    else float32. The RandAugment rows apply that op to every image of the batch (one
    slot, M=9, signs alternating), on the uint8 pixels a second slot sees.
    """
    rows = {}
    for preset in OP_PRESETS:
        augmenter = make_augmenter(preset, n_classes, seed=0)
        for (name, op), casts in zip(augmenter.stages, augmenter.casts):
            rows.setdefault(name, op if casts else _on_float(op))
    for name in ra.OPS:
        def one_op(images, labels, seed, index=ra.OPS.index(name)):
            batch = tf.shape(images)[0]
            sign = tf.where(tf.range(batch) % 2 == 0, 1.0, -1.0)
            return ra.routed_slot(images, tf.fill([batch], index), sign, 0.9), labels
        rows[f"randaugment.{name}"] = one_op
    return rows


def _on_float(op: Callable) -> Callable:
    return lambda images, labels, seed: op(tf.cast(images, tf.float32), labels, seed)


def run_config(name: str, image_size: int, batch: int, repeats: int) -> dict:
    """One isolated benchmark configuration (run by `harness.run_in_subprocess`).

    "ops": single-threaded, as the host decode it is compared with, in alternating
    rounds: ms per image of decode + random-resized crop + resize of 500x375
    photo-like JPEGs, and what each `preset_op_rows` op adds to a step that casts a
    uint8 batch [batch, image_size, image_size, 3] of such crops to float32 and
    reduces it (the op's time inside the step: the cast and a consumer are there
    with or without it; an op that casts the uint8 batch itself adds what it costs
    beyond the cast). A ratio is the median over rounds of op / decode within the round.
    """
    if name != "ops":
        raise ValueError(f"unknown augment benchmark configuration {name!r}; known: ops")
    import tempfile

    from visiontrain.bench.input import write_photo_like_jpegs

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        write_photo_like_jpegs(folder, 16)
        jpegs = [tf.io.read_file(tf.constant(f"{root}/{file}"))
                 for root, _, files in sorted(tf.io.gfile.walk(folder)) for file in files]
    decode = tf.function(lambda jpeg, seed: preprocess_for_train(
        jpeg, seed, image_size, (0.08, 1.0), (3 / 4, 4 / 3)))
    crops = [decode(jpeg, tf.constant([i, 0], tf.int64)) for i, jpeg in enumerate(jpegs)]
    images = tf.stack([crops[i % len(crops)] for i in range(batch)])
    labels = tf.one_hot(tf.range(batch) % 10, 10)
    seed = tf.Variable([0, 0], dtype=tf.int64)

    def step(op):
        @tf.function
        def run(x, y):
            if op is not None:
                # A new seed per call, as in training.
                seed.assign_add([1, 0])
                x = op(x, y, tf.identity(seed))[0]
            # A full reduction, so no part of the op's output can be skipped.
            return tf.reduce_sum(tf.cast(x, tf.float32))
        return lambda: run(images, labels).numpy()

    def decode_all():
        for i, jpeg in enumerate(jpegs):
            decode(jpeg, tf.constant([i, 1], tf.int64)).numpy()

    rows = {row: step(op) for row, op in preset_op_rows().items()}
    candidates = {"decode": decode_all, "step": step(None), **rows}
    for _ in range(WARMUP_CALLS):
        for fn in candidates.values():
            fn()
    ms = {row: [] for row in candidates}
    for _ in range(repeats):
        for row, fn in candidates.items():
            start = time.perf_counter()
            fn()
            ms[row].append((time.perf_counter() - start) * 1e3 /
                           (len(jpegs) if row == "decode" else batch))
    added = {row: [t - base for t, base in zip(ms[row], ms["step"])] for row in rows}
    return {"decode_ms": statistics.median(ms["decode"]),
            "step_ms": statistics.median(ms["step"]),
            "op_ms": {row: statistics.median(added[row]) for row in rows},
            "op_ratio": {row: statistics.median(a / b for a, b in zip(added[row], ms["decode"]))
                         for row in rows}}


def bench_ops(image_size: int = 224, batch: int = 64, repeats: int = 3) -> dict:
    """The per-op table (see `run_config`), in a fresh single-threaded process."""
    figures = harness.run_in_subprocess("visiontrain.bench.augment",
                                        ["ops", image_size, batch, repeats])
    return {"decode_crop_ms_per_image": figures["decode_ms"],
            "cast_step_ms_per_image": figures["step_ms"],
            "op_ms_per_image": figures["op_ms"], "op_ratio_to_decode": figures["op_ratio"]}


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
            x, y = images, tf.one_hot(labels, num_classes)
            if augment:
                # The uint8 batch, as the train step gives it (steps.make_train_step).
                x, y = augmenter(x, y, training=True, step=optimizer.iterations)
            x = tf.cast(x, tf.float32)
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(y, logits))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss
        return lambda: step(images, labels).numpy()

    augment_only = tf.function(lambda x, y: augmenter(x, tf.one_hot(
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
        return augmenter(images, labels, training=True)[0]

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


PARTS = ("ops", "randaugment", "step", "input")


def bench_augment(image_size: int = 224, batch: int = 64, n: int = 2, m: float = 9,
                  repeats: int = 3, step_batch: int = 8, accuracy: bool = False,
                  parts: tuple[str, ...] = PARTS) -> dict:
    """All augmentation figures of `parts`, as one flat dict (`print_table` shows it).

    Returns:
        ops: decode_crop_ms_per_image, cast_step_ms_per_image, and per op of the
        `OP_PRESETS` (`preset_op_rows`) op_ms_per_image (added to the step) and
        op_ratio_to_decode;
        randaugment: R_randaugment (ours / keras.layers.RandAugment img/s, same N
        and M) and R_randaugment_kerascv (ours / keras-cv's, when installed);
        step: step_overhead_imagenet (ResNet-50 step with / without in-step augmentation);
        input: input_throughput_ratio (host pipeline img/s when the imagenet preset runs
        in the step, so tf.data only decodes and crops, / img/s of the same
        pipeline with the preset mapped in tf.data);
        the raw img/s and seconds behind each ratio, and with `accuracy=True` the
        figures of `bench_augment_accuracy`.
    """
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"Unknown augment benchmark part(s) {unknown}; known: "
                         f"{','.join(PARTS)}. Received: parts={','.join(parts)}")
    result = {"image_size": image_size, "batch": batch, "n": n, "m": m}
    if "ops" in parts:
        result.update(bench_ops(image_size, batch, repeats))
    if "randaugment" in parts:
        result.update(bench_randaugment(image_size, batch, n, m, repeats))
    if "step" in parts:
        result.update(bench_step_overhead("imagenet", image_size, step_batch, max(repeats, 5)))
    if "input" in parts:
        result.update(bench_input_pipeline("imagenet", image_size, batch, repeats=repeats))
    if accuracy:
        from visiontrain.bench.augment_accuracy import bench_augment_accuracy

        result.update(bench_augment_accuracy())
    return result


def print_table(result: dict) -> None:
    """The human-readable form of `bench_augment`'s result."""
    print(f"Augmentation benchmarks, {result['image_size']}x{result['image_size']}, "
          f"RandAugment N={result['n']} M={result['m']:g}")
    if "op_ms_per_image" in result:
        budget = OP_BUDGET * result["decode_crop_ms_per_image"]
        print(f"  per op, 1 thread, time it adds to a step that casts a uint8 batch of "
              f"{result['batch']} to float32 ({result['cast_step_ms_per_image']:.3f} ms/image)")
        print(f"  decode + crop {result['decode_crop_ms_per_image']:.3f} ms/image, "
              f"budget {OP_BUDGET:g} of it: {budget:.3f} ms/image")
        print(f"    {'op':<26}{'ms/image':>10}{'/ decode':>10}")
        for row, ms in result["op_ms_per_image"].items():
            ratio = result["op_ratio_to_decode"][row]
            flag = "" if ratio <= OP_BUDGET else "  over budget"
            print(f"    {row:<26}{ms:>10.3f}{ratio:>10.3f}{flag}")
    for key, value in result.items():
        if isinstance(value, dict):
            continue
        print(f"  {key:<36}{value:>12.3f}" if isinstance(value, float) else
              f"  {key:<36}{value:>12}")


if __name__ == "__main__":
    print_table(bench_augment(accuracy="--accuracy" in sys.argv[1:]))
