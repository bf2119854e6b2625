"""The training entry point of the library: config in, trained run directory out.

Reads top to bottom: data -> (in scope) model, optimizer -> restore -> the loop
(steps, evaluation, checkpoints, summaries) -> results. A custom loop over
`strategy.run` because `model.fit` cannot run under MultiWorkerMirroredStrategy
(keras-team/keras#20585) and Keras 3's BackupAndRestore cannot resume mid-epoch.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import keras
import tensorflow as tf

from visiontrain.config import DataConfig, ModelConfig, TrainConfig
from visiontrain.models.registry import build_model
from visiontrain.pipelines import datasets
from visiontrain.pipelines import manifest as manifest_lib
from visiontrain.training import (
    checkpoints,
    optim,
    rundir,
    steps,
    transfer,
    transfer_optim,
    transfer_schedule,
)
from visiontrain.training.strategy import is_chief


def num_input_pipelines(strategy: tf.distribute.Strategy) -> int:
    """One input pipeline per worker process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))


def check_batch(global_batch_size: int, strategy: tf.distribute.Strategy) -> None:
    """Fails fast when the global batch does not split evenly over the replicas."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"--global_batch_size={global_batch_size} is not divisible by the "
            f"{replicas} replicas; use a multiple of {replicas}."
        )


def train(
    data: DataConfig,
    model_config: ModelConfig,
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
) -> dict[str, Any]:
    """Trains (or resumes) a run and returns its final metrics.

    Args:
      data: where the shards are and how batches are made.
      model_config: the network; num_classes 0 means "from the label map".
      config: optimisation, schedule, checkpoints, logging.
      strategy: the one strategy of this process (see `training.strategy`).

    Returns:
      The final validation metrics and bookkeeping, also written to results.json.
    """
    # ---- Data: pre-flight the shards before any step runs.
    check_batch(data.global_batch_size, strategy)
    manifest = manifest_lib.load_manifest(data.data_dir)
    manifest_lib.preflight(data.data_dir, ["train", "validation"], data.verify_sha256)
    labels = list(manifest["labels"])
    if model_config.num_classes and model_config.num_classes != len(labels):
        raise ValueError(
            f"--num_classes={model_config.num_classes} but {data.data_dir} has "
            f"{len(labels)} classes; drop the flag to take the count from the data."
        )
    model_config = ModelConfig(**{**model_config.__dict__, "num_classes": len(labels)})
    train_shards = datasets.split_shards(data.data_dir, manifest, "train")
    val_shards = datasets.split_shards(data.data_dir, manifest, "validation")
    pipelines = num_input_pipelines(strategy)
    steps_per_epoch = datasets.steps_per_epoch(train_shards, data.global_batch_size, pipelines)
    total_steps = config.epochs * steps_per_epoch
    plan = transfer.make_plan(config, steps_per_epoch)
    datasets.log_sharding(train_shards, pipelines)
    chief = is_chief(strategy)
    if chief:
        rundir.write_json_atomic(
            os.path.join(config.run_dir, rundir.RUN),
            rundir.run_record(strategy, manifest_lib.manifest_digest(data.data_dir)),
        )
        rundir.write_json_atomic(
            os.path.join(config.run_dir, rundir.CONFIG),
            {"data": data.__dict__, "model": model_config.__dict__, "train": config.__dict__,
             "labels": labels},
        )

    # ---- Model and optimizer, created in scope so their variables are mirrored.
    if config.dtype != "float32":
        keras.mixed_precision.set_dtype_policy(config.dtype)
    with strategy.scope():
        model = build_model(model_config, data.image_size)
        schedule = transfer_schedule.make_schedule(config, steps_per_epoch, data.global_batch_size)
        optimizer = optim.make_optimizer(config, schedule, model)
        # Built over everything that may ever train, before any freezing: stable slots.
        transfer_optim.attach_layer_decay(optimizer, model, config)
        optimizer.build(model.trainable_variables)
        ckpt = checkpoints.RunCheckpoints(config, model, optimizer, strategy, chief)
    step = ckpt.restore_latest()

    train_fn = steps.make_train_step(
        model, optimizer, num_classes=len(labels), global_batch_size=data.global_batch_size,
        label_smoothing=config.label_smoothing,
    )
    eval_fn = steps.make_eval_step(model, len(labels))

    @tf.function(jit_compile=config.jit_compile or None)
    def train_steps(iterator, num_steps, first_step, phase):
        del phase  # A Python trace key: a new phase retraces with its trainable set.
        loss_sum, correct = tf.constant(0.0), tf.constant(0.0)
        for i in tf.range(num_steps):
            seed = tf.stack([tf.constant(config.seed, tf.int64), tf.cast(first_step + i, tf.int64)])
            per_replica = strategy.run(train_fn, args=(*next(iterator), seed))
            loss_sum += strategy.reduce("SUM", per_replica[0], axis=None)
            correct += strategy.reduce("SUM", per_replica[1], axis=None)
        return loss_sum, correct

    @tf.function
    def eval_batch(images, labels):
        return strategy.reduce("SUM", strategy.run(eval_fn, args=(images, labels)), axis=None)

    def evaluate() -> dict[str, float]:
        eval_ds = strategy.distribute_datasets_from_function(
            lambda ctx: datasets.make_eval_dataset(
                val_shards, data, batch_size=ctx.get_per_replica_batch_size(data.global_batch_size),
                num_pipelines=ctx.num_input_pipelines, pipeline_id=ctx.input_pipeline_id,
            )
        )
        sums = tf.zeros([4])
        for images, labels_batch in eval_ds:
            sums += eval_batch(images, labels_batch)
        loss, top1, top5, count = sums.numpy().tolist()
        return {"loss": loss / count, "accuracy": top1 / count, "top5": top5 / count,
                "examples": int(count)}

    writers = {
        name: tf.summary.create_file_writer(os.path.join(config.run_dir, name))
        if chief else tf.summary.create_noop_writer()
        for name in (rundir.TRAIN_LOGS, rundir.VALIDATION_LOGS)
    }

    # ---- The loop: one dataset per epoch, resumed at the exact next batch.
    logging.info("Training %s: %d steps (%d per epoch, global batch %d, %d replicas)%s.",
                 model_config.name, total_steps, steps_per_epoch, data.global_batch_size,
                 strategy.num_replicas_in_sync, f", resuming at step {step}" if step else "")
    metrics: dict[str, float] = {}
    phase = None
    while step < total_steps:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        per_pipeline = data.global_batch_size // pipelines
        train_ds = strategy.distribute_datasets_from_function(
            lambda ctx, epoch=epoch, in_epoch=in_epoch: datasets.make_train_dataset(
                train_shards, data, epoch=epoch,
                batch_size=ctx.get_per_replica_batch_size(data.global_batch_size),
                records_per_epoch=steps_per_epoch * per_pipeline,
                start_record=in_epoch * per_pipeline,
                num_pipelines=ctx.num_input_pipelines, pipeline_id=ctx.input_pipeline_id,
            )
        )
        iterator = iter(train_ds)
        while in_epoch < steps_per_epoch:
            todo = min(config.steps_per_loop, steps_per_epoch - in_epoch,
                       ckpt.steps_to_next_save(step), plan.steps_to_phase_change(step))
            phase = transfer.enter_phase(model, plan, step, phase)
            start = time.perf_counter()
            loss_sum, correct = train_steps(iterator, tf.constant(todo), tf.constant(step), phase)
            loss = float(loss_sum) / (todo * data.global_batch_size)
            elapsed = time.perf_counter() - start
            if not tf.math.is_finite(loss):
                raise FloatingPointError(
                    f"Training loss is {loss} at step {step + todo}; lower --base_lr or set "
                    f"--clip_norm. The last good checkpoint is in {ckpt.directory}."
                )
            step += todo
            in_epoch += todo
            with writers[rundir.TRAIN_LOGS].as_default(step=step):
                tf.summary.scalar("loss", loss)
                tf.summary.scalar("accuracy", float(correct) / (todo * data.global_batch_size))
                tf.summary.scalar("learning_rate", float(schedule(step)))
                tf.summary.scalar("images_per_second", todo * data.global_batch_size / elapsed)
                tf.summary.scalar("step_time_ms", 1000 * elapsed / todo)
            ckpt.maybe_save(step)
        if (epoch + 1) % config.eval_every == 0 or step >= total_steps:
            metrics = evaluate()
            logging.info("Epoch %d (step %d): validation %s", epoch + 1, step, metrics)
            with writers[rundir.VALIDATION_LOGS].as_default(step=step):
                for name in ("loss", "accuracy", "top5"):
                    tf.summary.scalar(name, metrics[name])
            ckpt.save(step)
    if not metrics:
        metrics = evaluate()

    results = {"step": step, "epochs": config.epochs, "validation": metrics,
               "checkpoint": ckpt.latest_path(), "weights": "raw"}
    if chief:
        rundir.write_json_atomic(os.path.join(config.run_dir, rundir.RESULTS), results)
    for writer in writers.values():
        writer.flush()
    return results
