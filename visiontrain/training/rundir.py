"""The run directory: its layout, and the records that make a run reproducible.

    RUN_DIR/
      checkpoints/      tf.train.CheckpointManager files
      train/            TensorBoard events of the training loop
      validation/       TensorBoard events of evaluation
      flags.txt         replayable flagfile (written by the tool, which owns the flags)
      config.json       the resolved typed config
      run.json          versions, devices, strategy, replicas, dataset manifest digest
      results.json      final metrics, written when training ends
"""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

import keras
import tensorflow as tf
from absl import logging

import visiontrain
from visiontrain.config import DataConfig, ModelConfig, from_dict
from visiontrain.fileio import read_json
from visiontrain.models.registry import build_model
from visiontrain.training.ema import WeightAverage

CHECKPOINTS = "checkpoints"
TRAIN_LOGS = "train"
VALIDATION_LOGS = "validation"
CONFIG = "config.json"
RUN = "run.json"
RESULTS = "results.json"
FLAGS = "flags.txt"


def run_record(strategy: tf.distribute.Strategy, manifest_digest: str) -> dict[str, Any]:
    """What run.json holds: enough to tell later where and how a run was made."""
    return {
        "visiontrain": visiontrain.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "strategy": type(strategy).__name__,
        "num_replicas": strategy.num_replicas_in_sync,
        "replica_devices": list(getattr(strategy.extended, "worker_devices", ())),
        "dataset_manifest_sha256": manifest_digest,
    }


def load_run(run_dir: str) -> tuple[keras.Model, list[str], DataConfig, dict[str, Any]]:
    """Rebuilds a run's model from its config.json and restores its newest checkpoint.

    When results.json says the EMA weights evaluated better than the raw ones, the
    EMA averages stored in that checkpoint are copied into the model, and the
    returned results say so under "exported_weights".

    Returns:
      The model, its class names, its data config, and results.json (or {}) with
      "checkpoint" and "exported_weights" added.
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
    exported = "raw"
    if results.get("weights") == "ema" and _has_ema(latest):
        ema = WeightAverage(model, decay=0.5)  # the decay is irrelevant: only copied out
        tf.train.Checkpoint(model=model, ema=ema).restore(latest).expect_partial()
        ema.copy_to_model()
        exported = "ema"
    else:
        tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    logging.info("Loaded %s (%s weights) from %s.", config["model"]["name"], exported, latest)
    return model, list(config["labels"]), data, dict(
        results, checkpoint=latest, exported_weights=exported
    )


def _has_ema(checkpoint: str) -> bool:
    return any(name.startswith("ema/") for name, _ in tf.train.list_variables(checkpoint))
