"""The training entry point of the library: config in, trained run directory out.

Reads top to bottom: data -> (in scope) model, optimizer -> restore -> the loop
(steps, evaluation, checkpoints, summaries) -> results. A custom loop over
`strategy.run` because `model.fit` cannot run under MultiWorkerMirroredStrategy
(keras-team/keras#20585) and Keras 3's BackupAndRestore cannot resume mid-epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Any

import keras
import tensorflow as tf

from visiontrain import fileio
from visiontrain.augment import policy as augment_lib
from visiontrain.config import DataConfig, DistributionConfig, ModelConfig, TrainConfig
from visiontrain.models.registry import build_model
from visiontrain.pipelines import datasets
from visiontrain.training import (
    averaging,
    checkpoints,
    class_weights,
    data_errors,
    early_stop,
    losses,
    optim,
    replica_input,
    rundir,
    schedules,
    steps,
    summaries,
    transfer,
)
from visiontrain.training.ema import WeightAverage
from visiontrain.training.evaluator import Evaluator, better_weights, write_summaries
from visiontrain.training.preemption import make_preemption_handler
from visiontrain.training.progress import ProgressLog
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


def epoch_position(step: int, steps_per_epoch: int, per_pipeline_batch: int) -> dict[str, int]:
    """The `train_dataset` arguments that resume the data exactly after `step` steps.

    The position is derived from the step alone (distributed iterators cannot be
    checkpointed): the epoch seeds the order, and the records already consumed by
    this epoch's finished steps are skipped.
    """
    epoch, in_epoch = divmod(step, steps_per_epoch)
    return {"epoch": epoch, "records_per_epoch": steps_per_epoch * per_pipeline_batch,
            "start_record": in_epoch * per_pipeline_batch}


def seed_everything(config: TrainConfig) -> None:
    """Seeds Python, NumPy and TF; with --deterministic also makes TF ops deterministic.

    Measured: bit-identical weights across runs on CPU, one device and 2 replicas.
    """
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def check_options(model_config: ModelConfig, config: TrainConfig) -> None:
    """Rejects combinations across configs that can only fail later, inside a compiled
    step (TrainConfig checks its own combinations when it is made).

    Raises:
      ValueError: --jit_compile with --sync_bn (the synchronised BatchNorm all-reduce is
        a merge_call, which a compiled function cannot make).
    """
    if config.jit_compile and model_config.sync_bn:
        raise ValueError(
            "--jit_compile and --sync_bn cannot be combined: synchronised BatchNorm "
            "all-reduces inside the step, which XLA cannot compile; drop one of the two."
        )


def log_augmented_samples(
    source: datasets.Reader,
    augmenter: augment_lib.Augmenter,
    position: dict[str, int],
    logdir: str,
    step: int,
    count: int = 16,
) -> None:
    """Logs what the model trains on: the next `count` training images, augmented.

    Runs eagerly on a host copy of the batch, with the train step's seeding (replica 0),
    so the grid shows the very ops the run applies.
    """
    images, labels = next(iter(source.train_dataset(
        **position, batch_size=count, num_pipelines=1, pipeline_id=0)))
    targets = steps.targets_of(labels, augmenter.num_classes, source.multi_label)
    augmented, _ = augmenter(images, targets, step=tf.constant(step + 1),
                             replica_id=0)
    grid = tf.cast(tf.clip_by_value(tf.round(augmented), 0, 255), tf.uint8)
    summaries.write_image_grid(logdir, "augmented_samples", grid.numpy(), step)


def train(
    data: DataConfig,
    model_config: ModelConfig,
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    flagfile: str = "",
    distribution: DistributionConfig | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) a run and returns its final metrics.

    Args:
      data: where the shards are and how batches are made.
      model_config: the network; num_classes 0 means "from the label map".
      config: optimisation, schedule, checkpoints, logging.
      strategy: the one strategy of this process (see `training.strategy`).
      flagfile: the tool's flags as flags.txt text, for `rundir.bind_run` ("": none).
      distribution: the layout `strategy` was made from, recorded in config.json so a
        rerun's change of it is logged (None: not recorded).

    Returns:
      The final validation metrics and bookkeeping, also written to results.json.
    """
    check_options(model_config, config)
    # Temporary directories are removed on success and failure alike: a worker's
    # TMPDIR must not fill up over restarts.
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(rundir.claim(config.run_dir, is_chief(strategy)))
        try:
            return _train(data, model_config, config, strategy, cleanup, flagfile,
                          distribution)
        except tf.errors.DataLossError as err:
            raise data_errors.damaged_shard_error(err, data) from None


def _train(
    data: DataConfig,
    model_config: ModelConfig,
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    cleanup: contextlib.ExitStack,
    flagfile: str,
    distribution: DistributionConfig | None,
) -> dict[str, Any]:
    # ---- Data: pre-flight the source before any step runs.
    check_batch(data.global_batch_size, strategy)
    source = datasets.make_reader(data)
    source.preflight()
    labels = source.labels
    if model_config.num_classes and model_config.num_classes != len(labels):
        raise ValueError(
            f"--num_classes={model_config.num_classes} but {data.data_dir} has "
            f"{len(labels)} classes; drop the flag to take the count from the data."
        )
    model_config = dataclasses.replace(model_config, num_classes=len(labels))
    config = dataclasses.replace(config, loss=losses.resolve(config.loss, source.multi_label))
    pipelines = num_input_pipelines(strategy)
    # One optimizer step reads grad_accum_steps micro-batches: this many images.
    step_batch = data.global_batch_size * config.grad_accum_steps
    steps_per_epoch = source.steps_per_epoch(step_batch, pipelines)
    total_steps = config.epochs * steps_per_epoch
    plan = transfer.make_plan(config, steps_per_epoch)
    source.log_sharding(pipelines)
    # Evaluation and export never augment: only the train step takes the augmenter.
    augmenter = augment_lib.make_augmenter(config.augment, len(labels), config.seed)
    if config.jit_compile:
        augment_lib.check_xla(augmenter, data.image_size)
    chief = is_chief(strategy)
    # Every check above passed; this refuses a rerun that would mix runs, else records it.
    weights = class_weights.resolve(config.class_weights, labels, source.class_counts("train"))
    if weights is not None:
        logging.info("Class weights (--class_weights=%s): %s.", config.class_weights,
                     ", ".join(f"{label} {w:.3g}" for label, w in zip(labels, weights)))
    rundir.bind_run(config.run_dir,
                    rundir.config_record(data, model_config, config, labels, weights,
                                         distribution),
                    rundir.run_record(strategy, source.identity, pipelines), flagfile, chief)

    # ---- Model and optimizer, created in scope so their variables are mirrored.
    seed_everything(config)
    keras.mixed_precision.set_dtype_policy(config.dtype)
    with strategy.scope():
        model = build_model(model_config, data.image_size)
        schedule = schedules.make_schedule(config, steps_per_epoch, step_batch)
        # Built over everything that may ever train, before any freezing: stable slots.
        optimizer = optim.make_optimizer(config, schedule, model)
        optimizer.build(model.trainable_variables)
        ema = WeightAverage(model, config.ema_decay) if config.ema_decay else None
        sync_replicas = steps.make_replica_sync(strategy, model)
        ckpt = checkpoints.RunCheckpoints(config, model, optimizer, strategy, chief, ema,
                                          before_save=sync_replicas)
        cleanup.callback(ckpt.close)
    step = ckpt.restore_latest()
    if step == 0:
        # A step-0 checkpoint gives a NaN retry before the first save something to restore.
        ckpt.save(0)
    best = ckpt.best_record()
    progress = {"step": step}
    scratch = tempfile.mkdtemp(prefix="visiontrain-preempt-")
    cleanup.callback(shutil.rmtree, scratch, ignore_errors=True)
    preemption = make_preemption_handler(strategy, lambda: ckpt.save(progress["step"]), scratch)

    train_fn = steps.make_train_step(
        model, optimizer, num_classes=len(labels), global_batch_size=step_batch,
        label_smoothing=config.label_smoothing, loss=config.loss, class_weights=weights,
        augmenter=augmenter, ema=ema, jit_compile=config.jit_compile,
        multi_label=source.multi_label, accum_steps=config.grad_accum_steps,
    )
    train_steps = steps.make_multi_step(strategy, train_fn)
    evaluate = Evaluator(strategy, source, model, len(labels), data.global_batch_size, ema,
                         sync_replicas, config.loss)

    log_dirs = {name: os.path.join(config.run_dir, name)
                for name in (rundir.TRAIN_LOGS, rundir.VALIDATION_LOGS)}
    # The summaries module's writers, so each directory gets one event file.
    writers = {name: summaries.writer_for(path) if chief else tf.summary.create_noop_writer()
               for name, path in log_dirs.items()}
    profiler = None
    if config.profile_steps and chief:
        profiler = summaries.ProfileWindow(log_dirs[rundir.TRAIN_LOGS], *config.profile_steps)
        cleanup.callback(profiler.close)

    # ---- The loop: one dataset for the rest of the run, resumed at the exact next batch
    # (and rebuilt only after a NaN restore), so epochs follow without a set-up stall.
    n = strategy.num_replicas_in_sync
    accum = config.grad_accum_steps
    logging.info("Training %s: %d steps (%d per epoch, global batch %d%s, %d replica%s)%s.",
                 model_config.name, total_steps, steps_per_epoch, step_batch,
                 f" = {accum} micro-batches of {data.global_batch_size}" if accum > 1 else "",
                 n, "s" * (n != 1), f", resuming at step {step}" if step else "")
    progress_log = ProgressLog(total_steps, steps_per_epoch, step_batch,
                               config.progress_every_s, step)
    evals: dict[str, dict[str, float]] = {}
    nan_retries = 0
    samples_logged = False
    phase = None
    iterator = None
    # Checked at every epoch end (and here, for a rerun of a run that stopped early).
    stopped = early_stop.stop_record(best, step, steps_per_epoch, config.early_stop_patience)
    while step < total_steps and stopped is None:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        if iterator is None:
            position = epoch_position(step, steps_per_epoch, step_batch // pipelines)
            iterator = replica_input.train_iterator(
                strategy,
                lambda ctx, position=position, epochs=config.epochs - epoch: source.train_dataset(
                    **position, epochs=epochs,
                    batch_size=ctx.get_per_replica_batch_size(step_batch),
                    num_pipelines=ctx.num_input_pipelines, pipeline_id=ctx.input_pipeline_id,
                )
            )
            if chief and augmenter.stages and not samples_logged:
                log_augmented_samples(source, augmenter, position, log_dirs[rundir.TRAIN_LOGS],
                                      step)
                samples_logged = True
        diverged = False
        while in_epoch < steps_per_epoch:
            todo = min(config.steps_per_loop, steps_per_epoch - in_epoch,
                       ckpt.steps_to_next_save(step), plan.steps_to_phase_change(step))
            phase = transfer.enter_phase(model, plan, step, phase)
            if profiler is not None:
                profiler.step(step)
            start = time.perf_counter()
            loss_sum, correct = train_steps(iterator, tf.constant(todo), tf.constant(step), phase)
            loss = float(loss_sum) / (todo * step_batch)
            elapsed = time.perf_counter() - start
            if not math.isfinite(loss):
                if nan_retries >= config.max_nan_retries:
                    raise FloatingPointError(
                        f"Training loss is {loss} at step {step + todo} after "
                        f"{nan_retries} retries from the last good checkpoint; lower --base_lr "
                        f"or set --clip_norm. The last good checkpoint is in {ckpt.directory}."
                    )
                nan_retries += 1
                bad_step = step + todo
                step = ckpt.restore_latest()
                logging.warning("Training loss is %s at step %d: restored the last good "
                                "checkpoint (step %d), retry %d of %d.", loss, bad_step,
                                step, nan_retries, config.max_nan_retries)
                diverged = True
                iterator = None
                break
            step += todo
            in_epoch += todo
            progress["step"] = step
            progress_log.update(step, loss, todo)
            with writers[rundir.TRAIN_LOGS].as_default(step=step):
                tf.summary.scalar("loss", loss)
                tf.summary.scalar("accuracy", float(correct) / (todo * step_batch))
                tf.summary.scalar("learning_rate", float(schedule(optimizer.iterations)))
                tf.summary.scalar("images_per_second", todo * step_batch / elapsed)
                tf.summary.scalar("step_time_ms", 1000 * elapsed / todo)
            ckpt.maybe_save(step)
            preemption.save_checkpoint_if_preempted()
        if diverged:
            continue
        if (epoch + 1) % config.eval_every == 0 or step >= total_steps:
            evals = evaluate()
            for kind, metrics in evals.items():
                logging.info("Epoch %d (step %d): validation (%s weights) %s",
                             epoch + 1, step, kind, metrics)
                write_summaries(
                    writers[rundir.VALIDATION_LOGS], log_dirs[rundir.VALIDATION_LOGS], kind,
                    metrics, evaluate.tallies[kind], labels, step, chief)
            ckpt.save(step)
            kind = better_weights(evals)
            if evals[kind]["accuracy"] > best["accuracy"]:
                best = ckpt.save_best(step, evals[kind]["accuracy"], kind, ema)
            if config.average_checkpoints and config.average_of == "best":
                ckpt.save_top(step, evals["raw"]["accuracy"], config.average_checkpoints)
        stopped = early_stop.stop_record(best, step, steps_per_epoch,
                                         config.early_stop_patience)
    if stopped is not None:
        logging.info("Stopped early at epoch %d of %d: %s.", stopped["epoch"], config.epochs,
                     stopped["reason"])
    if not evals:
        evals = evaluate()
    del preemption

    kind = better_weights(evals)
    results = {"step": step, "epochs": config.epochs, "validation": evals[kind],
               "weights": kind, "validation_by_weights": evals,
               "checkpoint": ckpt.latest_path(), "best": best,
               "best_weights_file": checkpoints.BEST_WEIGHTS, "early_stop": stopped}
    if config.average_checkpoints:
        results["averaged"] = averaging.evaluate_average(
            model, ckpt.average_paths(config.average_of, config.average_checkpoints), best,
            evaluate.evaluate_weights, config.run_dir, chief)
        logging.info("Mean of the %s %d checkpoints %s: validation %s; %+.4f accuracy "
                     "against the best single checkpoint.", config.average_of,
                     config.average_checkpoints, results["averaged"]["checkpoints"],
                     results["averaged"]["validation"],
                     results["averaged"]["accuracy_minus_best"])
    if chief:
        fileio.write_json_atomic(os.path.join(config.run_dir, rundir.RESULTS), results)
        summaries.write_hparams(
            config.run_dir, fileio.read_json(os.path.join(config.run_dir, rundir.CONFIG)),
            {f"validation/{name}": value for name, value in evals[kind].items()
             if name != "examples"}, step)
    if config.final_weights:
        model.save_weights(config.final_weights)
    for writer in writers.values():
        writer.flush()
    return results
