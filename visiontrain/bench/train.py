"""`visiontrain-bench train`: where the training step's time goes, as side-by-side ratios.

Each configuration runs in its own subprocess (one strategy per process), after a
warm-up call, in interleaved rounds (see `visiontrain.bench.harness`). Our
configurations time `training.steps.make_multi_step`, the function the training loop
runs, over the optimizer, schedule and weight decay the loop builds; figures are
img/s of the timed calls:

- R_fit: our loop's function against plain `model.fit` on the same model, reader,
  global batch and steps per call (`steps_per_execution`), one device, ResNet-20 at
  16 px, batch 64 (configs/digits_demo.cfg's recipe). `fit` gets the issue's baseline,
  `SGD(0.1, momentum=0.9)`, constant LR, no weight decay; ours carries the recipe's
  warmup-cosine schedule and weight decay.
- R_replicas: the same training over 2 logical CPU replicas (MirroredStrategy)
  against 1 (the default one-device strategy).
- input_stall_cnn / input_stall_resnet50: 1 - (steps/s fed by our JPEG pipeline) /
  (steps/s fed by one in-memory batch repeated): the share of step time lost to input.
- strategy_overhead: img/s of MirroredStrategy over one device / OneDeviceStrategy.
- steps_per_loop_speedup: 16 steps per tf.function call against 1.
- img_per_s: every configuration's median.

Every ratio is the median of the within-round ratios; `<ratio>_range` is their
[min, max] over the rounds, the spread to read it with.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, NamedTuple

from visiontrain.bench import harness
from visiontrain.config import ConvertConfig


class Config(NamedTuple):
    model: str
    image_size: int
    global_batch: int
    strategy: str
    cpu_replicas: int
    input: str  # "real" (our reader over JPEG shards) or "synthetic" (one batch repeated)
    steps_per_loop: int
    trainer: str = "ours"  # or "fit": keras model.fit


CONFIGS = {
    "cnn_real": Config("small_cnn", 32, 64, "one_device", 1, "real", 16),
    "cnn_synthetic": Config("small_cnn", 32, 64, "one_device", 1, "synthetic", 16),
    "cnn_synthetic_loop1": Config("small_cnn", 32, 64, "one_device", 1, "synthetic", 1),
    "cnn_mirrored1": Config("small_cnn", 32, 64, "mirrored", 1, "synthetic", 16),
    "cnn_mirrored2": Config("small_cnn", 32, 64, "auto", 2, "synthetic", 16),
    "resnet20_ours": Config("resnet20", 16, 64, "auto", 1, "real", 20),
    "resnet20_fit": Config("resnet20", 16, 64, "auto", 1, "real", 20, "fit"),
    "resnet20_ours_2replicas": Config("resnet20", 16, 64, "auto", 2, "real", 20),
    "resnet50_real": Config("resnet50", 224, 8, "one_device", 1, "real", 2),
    "resnet50_synthetic": Config("resnet50", 224, 8, "one_device", 1, "synthetic", 2),
}
# ratio: (numerator config, denominator config, figure of the paired img/s ratio)
RATIOS = {
    "R_fit": ("resnet20_ours", "resnet20_fit", lambda r: r),
    "R_replicas": ("resnet20_ours_2replicas", "resnet20_ours", lambda r: r),
    "input_stall_cnn": ("cnn_real", "cnn_synthetic", lambda r: 1 - r),
    "input_stall_resnet50": ("resnet50_real", "resnet50_synthetic", lambda r: 1 - r),
    "strategy_overhead": ("cnn_mirrored1", "cnn_synthetic", lambda r: r),
    "steps_per_loop_speedup": ("cnn_synthetic", "cnn_synthetic_loop1", lambda r: r),
}
# The small CNN's and ResNet-20's images: CIFAR-sized JPEGs (ResNet-20 reads them at 16 px).
SMALL_IMAGES = (32, 32)


def _synthetic(batch_size: int, image_size: int, num_classes: int):
    import tensorflow as tf

    images = tf.random.uniform([batch_size, image_size, image_size, 3], 0, 256, tf.int32)
    labels = tf.random.uniform([batch_size], 0, num_classes, tf.int32)
    return tf.data.Dataset.from_tensors((tf.cast(images, tf.uint8), labels)).repeat()


def _reader(shards_dir: str, image_size: int):
    from visiontrain.config import DataConfig
    from visiontrain.pipelines import datasets

    return datasets.make_reader(DataConfig(data_dir=shards_dir, image_size=image_size,
                                           shuffle_buffer=256))


def _real(source, total_steps: int, global_batch: int, batch: int, num_pipelines: int = 1,
          pipeline_id: int = 0):
    """The loop's training dataset: one dataset over every epoch the timed steps need."""
    steps = source.steps_per_epoch(global_batch, num_pipelines)
    return source.train_dataset(
        epoch=0, epochs=-(-total_steps // steps), batch_size=batch,
        records_per_epoch=steps * (global_batch // num_pipelines),
        num_pipelines=num_pipelines, pipeline_id=pipeline_id)


def _train_config(steps_per_loop: int):
    from visiontrain.config import TrainConfig

    # configs/digits_demo.cfg's optimisation: warmup-cosine LR, decoupled weight decay.
    return TrainConfig(run_dir="", epochs=15, base_lr=0.4, warmup_epochs=1, weight_decay=5e-5,
                       steps_per_loop=steps_per_loop)


def _run_fit(config: Config, shards_dir: str, timed_calls: int, num_classes: int) -> dict:
    """model.fit with steps_per_execution: img/s between the first and the last execution."""
    import keras

    from visiontrain.config import ModelConfig
    from visiontrain.models.registry import build_model

    per_loop, batch = config.steps_per_loop, config.global_batch
    total_steps = (timed_calls + 1) * per_loop
    source = _reader(shards_dir, config.image_size)
    dataset = _real(source, total_steps, batch, batch)
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(name=config.model, num_classes=num_classes),
                        config.image_size)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=per_loop, jit_compile=False)
    ends = []

    class _Clock(keras.callbacks.Callback):
        # Keras calls this once per execution of `per_loop` steps.
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    model.fit(dataset, steps_per_epoch=total_steps, epochs=1, verbose=0, callbacks=[_Clock()])
    if len(ends) != timed_calls + 1:
        raise RuntimeError(f"model.fit reported {len(ends)} executions, expected "
                           f"{timed_calls + 1}: a Keras change in callback frequency.")
    steps_per_s = timed_calls * per_loop / (ends[-1] - ends[0])
    return {"steps_per_s": steps_per_s, "img_per_s": steps_per_s * batch,
            "timed": "keras.Model.fit"}


def run_config(name: str, shards_dir: str, timed_calls: int, num_classes: int = 2) -> dict:
    """One configuration, in this process: a warm-up call, then `timed_calls` timed calls."""
    config = CONFIGS[name]
    if config.trainer == "fit":
        return _run_fit(config, shards_dir, timed_calls, num_classes)
    from visiontrain.config import DistributionConfig, ModelConfig
    from visiontrain.training import strategy as strategy_lib

    strategy = strategy_lib.make_strategy(
        DistributionConfig(strategy=config.strategy, cpu_replicas=config.cpu_replicas))
    import keras
    import tensorflow as tf

    from visiontrain.models.registry import build_model
    from visiontrain.training import optim, replica_input, schedules, steps

    per_loop, batch = config.steps_per_loop, config.global_batch
    total_steps = (timed_calls + 1) * per_loop
    train = _train_config(per_loop)
    source = _reader(shards_dir, config.image_size) if config.input == "real" else None
    steps_per_epoch = source.steps_per_epoch(batch) if source else 100
    keras.utils.set_random_seed(0)
    # The loop's model and optimizer chapter, in the strategy scope.
    with strategy.scope():
        model = build_model(ModelConfig(name=config.model, num_classes=num_classes),
                            config.image_size)
        schedule = schedules.make_schedule(train, steps_per_epoch, batch)
        optimizer = optim.make_optimizer(train, schedule, model)
        optimizer.build(model.trainable_variables)
    step_fn = steps.make_train_step(model, optimizer, num_classes=num_classes,
                                    global_batch_size=batch, label_smoothing=0.0)
    train_steps = steps.make_multi_step(strategy, step_fn)
    iterator = replica_input.train_iterator(
        strategy,
        lambda ctx: _real(source, total_steps, batch, ctx.get_per_replica_batch_size(batch),
                          ctx.num_input_pipelines, ctx.input_pipeline_id)
        if source else _synthetic(ctx.get_per_replica_batch_size(batch), config.image_size,
                                  num_classes))
    float(train_steps(iterator, tf.constant(per_loop), tf.constant(0), None)[0])
    start = time.perf_counter()
    for call in range(1, timed_calls + 1):
        float(train_steps(iterator, tf.constant(per_loop), tf.constant(call * per_loop),
                          None)[0])
    steps_per_s = timed_calls * per_loop / (time.perf_counter() - start)
    timed = train_steps.python_function
    return {"steps_per_s": steps_per_s, "img_per_s": steps_per_s * batch,
            "timed": f"{timed.__module__}.{timed.__qualname__}"}


def bench_train(
    num_images: int = 400,
    cnn_calls: int = 10,
    resnet_calls: int = 4,
    rounds: int = 3,
    configs: tuple[str, ...] = tuple(CONFIGS),
    work_dir: str | None = None,
    small_images: int = 2048,
) -> dict[str, Any]:
    """Times the training step under each configuration; returns the ratios.

    Args:
      num_images: photo-like 500x375 JPEGs generated for ResNet-50's real pipeline.
      cnn_calls: timed multi-step calls of each small_cnn and ResNet-20 config (16 or
        20 steps each, or 1 for `cnn_synthetic_loop1`, which gets 16x as many calls).
      resnet_calls: timed calls of each ResNet-50 config (2 steps of batch 8 each).
      rounds: every configuration runs once per round, each in its own subprocess.
      configs: the configurations to run; a ratio is reported when both its sides ran.
      work_dir: where images and shards go (a temp dir by default).
      small_images: 32x32 JPEGs generated for the small CNN and ResNet-20.

    Returns:
      {"img_per_s": {config: median img/s}, "timed": {config: the function timed},
      every ratio of RATIOS whose sides ran, each with "<ratio>_range", "rounds"}.
    """
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        raise ValueError(f"Unknown train benchmark configs {unknown}; known: {list(CONFIGS)}")
    from visiontrain.bench.input import write_photo_like_jpegs
    from visiontrain.pipelines import make_tfrecords

    work_dir = work_dir or tempfile.mkdtemp(prefix="train_bench_")
    shards = {}
    for kind, count, size in (("small", small_images, SMALL_IMAGES), ("photo", num_images, None)):
        if not any(_images_of(CONFIGS[name]) == kind and CONFIGS[name].input == "real"
                   for name in configs):
            continue
        images_dir = os.path.join(work_dir, f"images_{kind}")
        shards[kind] = os.path.join(work_dir, f"shards_{kind}")
        write_photo_like_jpegs(images_dir, count, **({"size": size} if size else {}))
        make_tfrecords.build(ConvertConfig(
            source=images_dir, output=shards[kind], val_fraction=0.05, num_shards=4))

    def run(name: str) -> dict[str, Any]:
        calls = resnet_calls if name.startswith("resnet50") else cnn_calls
        calls *= 16 if CONFIGS[name].steps_per_loop == 1 else 1
        return harness.run_in_subprocess(
            __name__, [name, shards.get(_images_of(CONFIGS[name]), ""), calls])

    runs = harness.interleaved_rounds(configs, rounds, run)
    result: dict[str, Any] = {
        "img_per_s": {name: harness.median_of(runs[name], "img_per_s") for name in runs},
        "timed": {name: runs[name][0]["timed"] for name in runs},
        "rounds": rounds,
    }
    for key, (a, b, figure) in RATIOS.items():
        if a in runs and b in runs:
            ratios = sorted(figure(r) for r in harness.paired_ratios(runs[a], runs[b],
                                                                     "img_per_s"))
            result[key] = figure(harness.paired_ratio(runs[a], runs[b], "img_per_s"))
            result[key + "_range"] = [ratios[0], ratios[-1]]
    return result


def _images_of(config: Config) -> str:
    return "photo" if config.model == "resnet50" else "small"
