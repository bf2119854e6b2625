"""The run directory: its layout, and the records that make a run reproducible.

    RUN_DIR/
      checkpoints/      tf.train.CheckpointManager files
      train/            TensorBoard events of the training loop
      validation/       TensorBoard events of evaluation
      flags.txt         replayable flagfile (the tool passes its text, as it owns the flags)
      config.json       the resolved typed configs (`config_record`), which reruns are
                        compared with
      run.json          versions, devices, strategy, replicas, dataset manifest digest
      results.json      final metrics, written when training ends
      .lock             held by the training process (see runlock.py)

The records (flags.txt, config.json, run.json) are written by `bind_run` only after a
rerun passed the resume policy (resume_policy.py), so a refused rerun leaves them as
they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import socket
from typing import Any

import keras
import tensorflow as tf
from absl import logging

import visiontrain
from visiontrain import fileio
from visiontrain.config import (
    DataConfig,
    DistributionConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
    to_dict,
)
from visiontrain.errors import UserError
from visiontrain.fileio import read_json
from visiontrain.models.registry import build_model
from visiontrain.pipelines.manifest import load_manifest
from visiontrain.pipelines.record_sources import is_multi_label
from visiontrain.training import averaging, preemption, resume_policy
from visiontrain.training.ema import WeightAverage
from visiontrain.training.runlock import RunLock

CHECKPOINTS = "checkpoints"
TRAIN_LOGS = "train"
VALIDATION_LOGS = "validation"
CONFIG = "config.json"
RUN = "run.json"
RESULTS = "results.json"
# Per-label decision thresholds of a multi-label run, tuned by visiontrain-evaluate.
THRESHOLDS = "thresholds.json"
FLAGS = "flags.txt"


def run_record(strategy: tf.distribute.Strategy, dataset: dict[str, str],
               input_pipelines: int = 1) -> dict[str, Any]:
    """What run.json holds: enough to tell later where and how a run was made, and on
    which data (`RecordSource.identity`)."""
    return {
        "visiontrain": visiontrain.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "strategy": type(strategy).__name__,
        "num_replicas": strategy.num_replicas_in_sync,
        "replica_devices": replica_devices(strategy),
        "dataset": {k: v for k, v in dataset.items() if k != "manifest_sha256"},
        # What runs before the content digest bound, so that they still resume.
        "dataset_manifest_sha256": dataset.get("manifest_sha256", dataset["sha256"]),
        "input_pipelines": input_pipelines,
    }


def config_record(data: DataConfig, model: ModelConfig, train: TrainConfig,
                  labels: list[str], class_weights: list[float] | None,
                  distribution: DistributionConfig | None = None) -> dict[str, Any]:
    """What config.json holds: each config under its `RUN_CONFIGS` key (the library, which
    takes a strategy instead, records no "distribution"), the label map, and the resolved
    per-class loss weights (None: unweighted)."""
    record = {"data": to_dict(data), "model": to_dict(model), "train": to_dict(train)}
    if distribution is not None:
        record["distribution"] = to_dict(distribution)
    return {**record, "labels": list(labels), "class_weights": class_weights}


def replica_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """The devices the replicas run on (the default strategy's: the first logical one)."""
    try:
        return list(strategy.extended.worker_devices)
    except RuntimeError:  # The default strategy has no worker_devices.
        return [tf.config.list_logical_devices()[0].name]


def claim(run_dir: str, chief: bool) -> contextlib.ExitStack:
    """What a training process holds while it runs: the run directory's lock (chief),
    and its own SIGINT handler back afterwards (preemption.py takes Ctrl-C meanwhile).

    A start that fails before the first checkpoint removes the run directory, with
    the records it wrote, if this claim created it: a failed first start leaves
    nothing behind, whatever failed (a bad --pretrained file, a model that cannot be
    built at the size asked for, the network).
    """
    stack = contextlib.ExitStack()
    if chief:
        stack.enter_context(RunLock(run_dir, marker=os.path.join(CHECKPOINTS, "checkpoint"),
                                    discard=True))
    stack.enter_context(preemption.sigint_watched())
    return stack


def bind_run(run_dir: str, config: dict[str, Any], run: dict[str, Any], flagfile: str,
             chief: bool) -> None:
    """Checks a rerun into `run_dir` against its records, then (chief) writes the new ones.

    The rerun is compared with the run through config.json alone (`resume_policy.compare`).

    Args:
      run_dir: the run directory; records found there are the previous run's.
      config: what config.json is to hold (`config_record`).
      run: what run.json is to hold (`run_record`).
      flagfile: flags.txt's text, kept to replay the run; "" from the library, which has
        no flags.
      chief: only the chief writes.

    Raises:
      ValueError: the rerun changes what `resume_policy` binds in a run that saved a
        checkpoint; nothing was written.
    """
    config_path, flags_path = os.path.join(run_dir, CONFIG), os.path.join(run_dir, FLAGS)
    checkpointed = tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINTS)) is not None
    if os.path.exists(config_path) and not checkpointed:
        # A start that failed before its first checkpoint: nothing to mix runs in.
        logging.info("%s holds the records of a start that saved no checkpoint; this run "
                     "replaces them.", run_dir)
    elif os.path.exists(config_path):
        old_config = read_json(config_path)
        run_path = os.path.join(run_dir, RUN)
        old_run = read_json(run_path) if os.path.exists(run_path) else {}
        refused, allowed = resume_policy.compare(old_config, config)
        # The label map and class weights are bound through config.json.
        bound = ("labels", "class_weights")
        refused += resume_policy.compare_derived(
            {**old_run, **{key: old_config.get(key) for key in bound}},
            {**run, **{key: config.get(key) for key in bound}})
        if refused:
            replay = (f"--flagfile={flags_path}" if os.path.exists(flags_path)
                      else f"the values in {config_path}")
            raise ValueError(resume_policy.refusal_message(run_dir, refused, replay))
        # A worker's flags differ from the chief's in --task_index: only the chief tells.
        if allowed and chief:
            logging.info("Resuming %s with changes that keep its meaning: %s.", run_dir,
                         "; ".join(map(str, allowed)))
    if chief:
        # config.json last: its presence says the run's records are all there.
        fileio.write_json_atomic(os.path.join(run_dir, RUN), run)
        if flagfile:
            fileio.write_bytes_atomic(flags_path, flagfile.encode("utf-8"))
        fileio.write_json_atomic(config_path, config)


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A trained run, rebuilt with its weights restored, for evaluation or export.

    Attributes:
      model: The network, holding the weights `exported_weights` names.
      labels: The class names, in logit order.
      data: The run's data config at the evaluation image size and crop asked for.
      results: results.json as the run wrote it ({} when it has none yet).
      checkpoint: The checkpoint or weights file the weights came from.
      exported_weights: "raw", "ema" (the checkpoint's EMA, when it evaluated better) or
        "averaged" (the checkpoint mean of --average_checkpoints).
      train_image_size: The image size the run trained at.
    """

    model: keras.Model
    labels: list[str]
    data: DataConfig
    results: dict[str, Any]
    checkpoint: str
    exported_weights: str
    train_image_size: int


def load_run(run_dir: str, weights: str = "newest", eval_image_size: int = 0,
             eval_crop_fraction: float = 0.0) -> LoadedRun:
    """`load_weights` of the run, then rebuilt for evaluation at `eval_image_size` (0: the
    training size) with `eval_crop_fraction` (0: the run's), which the returned data config
    then holds. Our networks end in global pooling, so the same weights apply at any input
    size (the train/test resolution discrepancy of Touvron et al. 2019: evaluating above
    the training size often scores better).
    """
    run = load_weights(run_dir, weights)
    size = eval_image_size or run.train_image_size
    model = run.model
    if size != run.train_image_size:
        config = read_json(os.path.join(run_dir, CONFIG))
        model_config = from_dict(ModelConfig, {**config["model"], "pretrained": ""})
        model = build_model(model_config, size)
        model.set_weights(run.model.get_weights())
    data = dataclasses.replace(
        run.data, image_size=size,
        eval_crop_fraction=eval_crop_fraction or run.data.eval_crop_fraction)
    return dataclasses.replace(run, model=model, data=data)


def load_weights(run_dir: str, weights: str = "newest") -> LoadedRun:
    """Rebuilds a run's model from its config.json and restores its newest checkpoint.

    When results.json says the EMA weights evaluated better than the raw ones, the
    EMA averages stored in that checkpoint are copied into the model (`exported_weights`
    "ema"). `weights="averaged"` loads the checkpoint mean of --average_checkpoints
    instead (RUN/averaged.weights.h5); its figures are results.json's "averaged" record.

    Raises:
      FileNotFoundError: not a run directory, no checkpoint, or no average asked for.
    """
    config_path = os.path.join(run_dir, CONFIG)
    if not os.path.exists(config_path):
        raise FileNotFoundError(
            f"{run_dir} is not a visiontrain run directory (no {CONFIG}); pass the "
            "--run_dir of a `visiontrain-train` run."
        )
    config = read_json(config_path)
    data = from_dict(DataConfig, config["data"])
    model = build_model(from_dict(ModelConfig, config["model"]), data.image_size)
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINTS))
    if latest is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint to export; train it first.")
    results_path = os.path.join(run_dir, RESULTS)
    results = read_json(results_path) if os.path.exists(results_path) else {}
    run = LoadedRun(model=model, labels=list(config["labels"]), data=data, results=results,
                    checkpoint=latest, exported_weights="raw",
                    train_image_size=data.image_size)
    if weights == "averaged":
        path = os.path.join(run_dir, averaging.AVERAGED_WEIGHTS)
        if "averaged" not in results or not os.path.exists(path):
            raise FileNotFoundError(
                f"{run_dir} has no checkpoint average ({path}); train it with "
                "--average_checkpoints=N, or export the newest checkpoint (--weights=newest).")
        model.load_weights(path)
        logging.info("Loaded %s (the mean of %s) from %s.", config["model"]["name"],
                     ", ".join(results["averaged"]["checkpoints"]), path)
        # results.json's "weights" and "validation" stay the run's verdict on the newest
        # checkpoint: the export's record compares the mean against them.
        return dataclasses.replace(run, checkpoint=path, exported_weights="averaged")
    path, exported = _restore_newest_readable(run_dir, model, results.get("weights") == "ema")
    if path != latest:
        # results.json measured the newest checkpoint, not this one: its figures go.
        run = dataclasses.replace(run, checkpoint=path, results={
            k: v for k, v in results.items() if k not in ("validation", "validation_by_weights")})
    logging.info("Loaded %s (%s weights) from %s.", config["model"]["name"], exported, path)
    return dataclasses.replace(run, exported_weights=exported)


def _restore_newest_readable(run_dir: str, model: keras.Model, ema_wanted: bool
                             ) -> tuple[str, str]:
    """Restores the newest checkpoint that reads, as training does when it resumes
    (`checkpoints.RunCheckpoints.restore_latest`): a damaged newest one is named in a
    warning and the previous one tried. Returns (path, "ema" or "raw").

    Raises:
      UserError: no checkpoint of the run can be read.
    """
    state = tf.train.get_checkpoint_state(os.path.join(run_dir, CHECKPOINTS))
    candidates = list(reversed(state.all_model_checkpoint_paths))
    for path in candidates:
        try:
            if ema_wanted and _has_ema(path):
                ema = WeightAverage(model, decay=0.5)  # the decay is irrelevant: only copied out
                tf.train.Checkpoint(model=model, ema=ema).restore(path).expect_partial()
                ema.copy_to_model()
                return path, "ema"
            tf.train.Checkpoint(model=model).restore(path).expect_partial()
            return path, "raw"
        # A truncated data file surfaces as IndexError ("Read less bytes than requested").
        except (tf.errors.OpError, AssertionError, ValueError, IndexError) as err:
            logging.warning("Checkpoint %s is unreadable (%s); trying the previous one.",
                            path, str(err).splitlines()[0])
    raise UserError(f"None of the checkpoints of {run_dir} ({len(candidates)}) could be "
                    "restored; train the run again, or restore its checkpoints from a backup.")


def _has_ema(checkpoint: str) -> bool:
    return any(name.startswith("ema/") for name, _ in tf.train.list_variables(checkpoint))


def load_thresholds(run_dir: str, data_dir: str) -> dict[str, Any] | None:
    """A multi-label run's per-label thresholds (RUN/thresholds.json); None for single-label
    data, whose manifest says so.

    Raises:
      ValueError: multi-label data, but no thresholds tuned yet; the message gives the command.
    """
    if not is_multi_label(load_manifest(data_dir)):
        return None
    path = os.path.join(run_dir, THRESHOLDS)
    if not os.path.exists(path):
        raise ValueError(f"{run_dir} was trained on multi-label data and has no {THRESHOLDS} "
                         "yet; tune them on validation first: visiontrain-evaluate "
                         f"--run_dir={run_dir} [--target_precision=P].")
    return read_json(path)
