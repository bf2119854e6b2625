"""`visiontrain-bench train`: where the training step's time goes, as side-by-side ratios.

Each configuration runs the loop's replicated multi-step function in its own
subprocess (one strategy per process), after a warm-up call, in interleaved rounds
(see `visiontrain.bench.harness`); figures are steps/s of the timed calls:

- input_stall_cnn / input_stall_resnet50: 1 - (steps/s fed by our JPEG pipeline) /
  (steps/s fed by one in-memory batch repeated): the share of step time lost to input.
- strategy_overhead: img/s of MirroredStrategy over one device / OneDeviceStrategy.
- steps_per_loop_speedup: 16 steps per tf.function call against 1.
- img_per_s: every configuration, including 1 against 2 logical CPU replicas.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from visiontrain.bench import harness
from visiontrain.config import ConvertConfig

# name: (model, image size, global batch, strategy, cpu replicas, input, steps per loop)
CONFIGS = {
    "cnn_real": ("small_cnn", 32, 64, "one_device", 1, "real", 16),
    "cnn_synthetic": ("small_cnn", 32, 64, "one_device", 1, "synthetic", 16),
    "cnn_synthetic_loop1": ("small_cnn", 32, 64, "one_device", 1, "synthetic", 1),
    "cnn_mirrored1": ("small_cnn", 32, 64, "mirrored", 1, "synthetic", 16),
    "cnn_mirrored2": ("small_cnn", 32, 64, "auto", 2, "synthetic", 16),
    "resnet50_real": ("resnet50", 224, 8, "one_device", 1, "real", 2),
    "resnet50_synthetic": ("resnet50", 224, 8, "one_device", 1, "synthetic", 2),
}


def _synthetic(batch_size: int, image_size: int, num_classes: int):
    import tensorflow as tf

    images = tf.random.uniform([batch_size, image_size, image_size, 3], 0, 256, tf.int32)
    labels = tf.random.uniform([batch_size], 0, num_classes, tf.int32)
    return tf.data.Dataset.from_tensors((tf.cast(images, tf.uint8), labels)).repeat()


def _real(shards_dir: str, image_size: int, total_steps: int, ctx, global_batch: int):
    from visiontrain.config import DataConfig
    from visiontrain.pipelines import datasets

    source = datasets.make_reader(DataConfig(data_dir=shards_dir, image_size=image_size,
                                            shuffle_buffer=256))
    batch = ctx.get_per_replica_batch_size(global_batch)
    steps = source.steps_per_epoch(global_batch, ctx.num_input_pipelines)
    per_pipeline = global_batch // ctx.num_input_pipelines
    dataset = None
    for epoch in range(-(-total_steps // steps)):
        one = source.train_dataset(epoch=epoch, batch_size=batch,
                                   records_per_epoch=steps * per_pipeline,
                                   num_pipelines=ctx.num_input_pipelines,
                                   pipeline_id=ctx.input_pipeline_id)
        dataset = one if dataset is None else dataset.concatenate(one)
    return dataset


def run_config(name: str, shards_dir: str, timed_calls: int, num_classes: int = 2) -> dict:
    """One configuration, in this process: a warm-up call, then `timed_calls` timed calls."""
    model_name, size, batch, strategy_name, replicas, source, per_loop = CONFIGS[name]
    from visiontrain.config import DistributionConfig, ModelConfig, TrainConfig
    from visiontrain.training import strategy as strategy_lib

    strategy = strategy_lib.make_strategy(
        DistributionConfig(strategy=strategy_name, cpu_replicas=replicas))
    import tensorflow as tf

    from visiontrain.models.registry import build_model
    from visiontrain.training import optim, steps

    config = TrainConfig(run_dir="", epochs=1)
    with strategy.scope():
        model = build_model(ModelConfig(name=model_name, num_classes=num_classes), size)
        optimizer = optim.make_optimizer(config, 0.01, model)
        optimizer.build(model.trainable_variables)
    step_fn = steps.make_train_step(model, optimizer, num_classes=num_classes,
                                    global_batch_size=batch, label_smoothing=0.0)
    total_steps = (timed_calls + 1) * per_loop
    distributed = strategy.distribute_datasets_from_function(
        lambda ctx: _real(shards_dir, size, total_steps, ctx, batch)
        if source == "real" else _synthetic(ctx.get_per_replica_batch_size(batch), size,
                                            num_classes))

    @tf.function
    def train_steps(iterator, num_steps):
        loss = tf.constant(0.0)
        for i in tf.range(num_steps):
            per_replica = strategy.run(step_fn, args=(*next(iterator), tf.cast(i, tf.int64)))
            loss += strategy.reduce("SUM", per_replica[0], axis=None)
        return loss

    iterator = iter(distributed)
    train_steps(iterator, tf.constant(per_loop)).numpy()
    start = time.perf_counter()
    for _ in range(timed_calls):
        train_steps(iterator, tf.constant(per_loop)).numpy()
    steps_per_s = timed_calls * per_loop / (time.perf_counter() - start)
    return {"steps_per_s": steps_per_s, "img_per_s": steps_per_s * batch}


def bench_train(
    num_images: int = 400,
    cnn_calls: int = 10,
    resnet_calls: int = 4,
    rounds: int = 3,
    configs: tuple[str, ...] = tuple(CONFIGS),
    work_dir: str | None = None,
) -> dict[str, Any]:
    """Times the training step under each configuration; returns the ratios.

    Args:
      num_images: photo-like 500x375 JPEGs generated for ResNet-50's real pipeline;
        the small CNN reads 2,048 generated 32x32 JPEGs (CIFAR-sized, as its input).
      cnn_calls: timed multi-step calls of each small_cnn config (16 steps each, or 1
        for `cnn_synthetic_loop1`, which gets 16x as many calls).
      resnet_calls: timed calls of each ResNet-50 config (2 steps of batch 8 each).
      rounds: every configuration runs once per round, each in its own subprocess.
      configs: the configurations to run; a ratio is reported when both its sides ran.
      work_dir: where images and shards go (a temp dir by default).

    Returns:
      {"img_per_s": {config: median img/s}, "input_stall_cnn", "input_stall_resnet50",
      "strategy_overhead", "steps_per_loop_speedup", "replicas_2_vs_1", "rounds"}
      (ratios are medians of within-round ratios, present when both sides ran).
    """
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        raise ValueError(f"Unknown train benchmark configs {unknown}; known: {list(CONFIGS)}")
    from visiontrain.bench.input import write_photo_like_jpegs
    from visiontrain.pipelines import make_tfrecords

    work_dir = work_dir or tempfile.mkdtemp(prefix="train_bench_")
    shards = {}
    for model, count, size in (("small_cnn", 2048, (32, 32)), ("resnet50", num_images, None)):
        if not any(CONFIGS[name][0] == model and CONFIGS[name][5] == "real" for name in configs):
            continue
        images_dir = os.path.join(work_dir, f"images_{model}")
        shards[model] = os.path.join(work_dir, f"shards_{model}")
        write_photo_like_jpegs(images_dir, count, **({"size": size} if size else {}))
        make_tfrecords.build(ConvertConfig(
            source=images_dir, output=shards[model], val_fraction=0.05, num_shards=4))

    def run(name: str) -> dict[str, Any]:
        calls = resnet_calls if name.startswith("resnet") else cnn_calls
        calls *= 16 if CONFIGS[name][6] == 1 else 1
        return harness.run_in_subprocess(
            __name__, [name, shards.get(CONFIGS[name][0], ""), calls])

    runs = harness.interleaved_rounds(configs, rounds, run)
    result: dict[str, Any] = {
        "img_per_s": {name: harness.median_of(runs[name], "img_per_s") for name in runs},
        "rounds": rounds,
    }
    ratios = {
        "input_stall_cnn": ("cnn_real", "cnn_synthetic", lambda r: 1 - r),
        "input_stall_resnet50": ("resnet50_real", "resnet50_synthetic", lambda r: 1 - r),
        "strategy_overhead": ("cnn_mirrored1", "cnn_synthetic", lambda r: r),
        "steps_per_loop_speedup": ("cnn_synthetic", "cnn_synthetic_loop1", lambda r: r),
        "replicas_2_vs_1": ("cnn_mirrored2", "cnn_mirrored1", lambda r: r),
    }
    for key, (a, b, figure) in ratios.items():
        if a in runs and b in runs:
            result[key] = figure(harness.paired_ratio(runs[a], runs[b], "img_per_s"))
    return result
