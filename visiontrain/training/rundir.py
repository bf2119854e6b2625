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

import json
import os
import platform
import socket
import tempfile
from typing import Any

import keras
import tensorflow as tf

import visiontrain

CHECKPOINTS = "checkpoints"
TRAIN_LOGS = "train"
VALIDATION_LOGS = "validation"
CONFIG = "config.json"
RUN = "run.json"
RESULTS = "results.json"
FLAGS = "flags.txt"


def write_json_atomic(path: str, payload: Any) -> None:
    """Writes JSON to a temporary file beside `path`, then renames it into place."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    """Reads a JSON file, with an error that names it when it is missing."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist.")
    with open(path) as f:
        return json.load(f)


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
