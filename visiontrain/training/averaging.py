"""Checkpoint averaging: the mean of the last N or the best N checkpoints of a run.

Every float variable of the model is averaged, BatchNorm moving statistics included
(as timm's avg_checkpoints.py does); integer state (random-layer seeds) is taken from
the newest checkpoint. The raw weights are averaged, not the EMA. The loop evaluates the
mean at the end of training, reports it against the single best checkpoint, and writes
it to RUN/averaged.weights.h5, which `visiontrain-export --weights=averaged` exports.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from visiontrain import fileio

AVERAGED_WEIGHTS = "averaged.weights.h5"


def average_into(model: keras.Model, paths: list[str]) -> None:
    """Sets each float variable of `model` to its mean over the checkpoints `paths`."""
    checkpoint = tf.train.Checkpoint(model=model)
    floats = [v for v in model.variables if "float" in str(v.dtype)]
    sums = [np.zeros(v.shape, np.float64) for v in floats]
    for path in paths:
        checkpoint.restore(path).expect_partial()
        for total, variable in zip(sums, floats):
            total += keras.ops.convert_to_numpy(variable)
    for total, variable in zip(sums, floats):
        variable.assign((total / len(paths)).astype(np.float32))


def evaluate_average(model: keras.Model, paths: list[str], best: dict[str, Any],
                     evaluate_weights: Callable[[str], dict[str, float]], run_dir: str,
                     chief: bool) -> dict[str, Any]:
    """Evaluates the mean of `paths`, writes it (chief), and puts the model's weights back.

    Returns the results.json record: which checkpoints, the metrics, and the difference
    in validation accuracy against the single best checkpoint (`best`, its record).
    """
    trained = [keras.ops.convert_to_numpy(v) for v in model.variables]
    average_into(model, paths)
    metrics = evaluate_weights("averaged")
    if chief:
        target = os.path.join(run_dir, AVERAGED_WEIGHTS)
        tmp = fileio.temp_path(target)
        model.save_weights(tmp)
        fileio.publish(tmp, target)
    for variable, value in zip(model.variables, trained):
        variable.assign(value)
    return {
        "checkpoints": [os.path.basename(path) for path in paths],
        "validation": metrics,
        "weights_file": AVERAGED_WEIGHTS,
        "best_single": {"step": best.get("step"), "accuracy": best["accuracy"],
                        "weights": best.get("weights")},
        "accuracy_minus_best": metrics["accuracy"] - best["accuracy"],
    }
