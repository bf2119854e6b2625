"""TensorBoard helpers: scalars, HParams, image grids, confusion matrices, profiling.

Each writer function takes a log directory (or a writer) and a step, so the
training loop and the evaluate tool share them.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from visiontrain.evaluation import render

_WRITERS: dict[str, tf.summary.SummaryWriter] = {}


def writer_for(logdir: str) -> tf.summary.SummaryWriter:
    """One cached summary writer per directory (TensorBoard dislikes many event files)."""
    if logdir not in _WRITERS:
        _WRITERS[logdir] = tf.summary.create_file_writer(logdir)
    return _WRITERS[logdir]


def write_scalars(logdir: str, scalars: Mapping[str, float], step: int) -> None:
    """One scalar summary per entry, e.g. {"loss": 0.3, "accuracy": 0.9}."""
    writer = writer_for(logdir)
    with writer.as_default(step=step):
        for tag, value in scalars.items():
            tf.summary.scalar(tag, float(value))
    writer.flush()


def flatten_hparams(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as HParams values: dotted keys; bool/int/float/str values.

    Lists and tuples become comma-joined strings; None becomes "".
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif isinstance(value, (list, tuple)):
            flat[name] = ",".join(str(v) for v in value)
        else:
            flat[name] = "" if value is None else str(value)
    return flat


def write_hparams(
    logdir: str, config: Mapping[str, Any], metrics: Mapping[str, float], step: int
) -> None:
    """The HParams dashboard entry of a run: its config and its final metrics.

    Args:
      logdir: the run directory (the dashboard groups runs below one parent).
      config: the run's config.json (nested dicts are flattened with dots).
      metrics: final metric values, e.g. {"validation/accuracy": 0.98}.
      step: the step the metrics belong to.
    """
    values = flatten_hparams(config)
    writer = writer_for(logdir)
    with writer.as_default(step=step):
        hp.hparams_config(
            hparams=[hp.HParam(name) for name in sorted(values)],
            metrics=[hp.Metric(tag) for tag in sorted(metrics)],
        )
        hp.hparams(values)
        for tag, value in metrics.items():
            tf.summary.scalar(tag, float(value))
    writer.flush()


def write_image_grid(
    logdir: str, tag: str, images: np.ndarray | tf.Tensor, step: int, max_images: int = 16
) -> None:
    """One image summary tiling the first `max_images` of a uint8 [B, H, W, 3] batch.

    For augmented samples: log what the model actually trains on.
    """
    write_image(logdir, tag, render.tile(np.asarray(images)[:max_images]), step)


def write_image(logdir: str, tag: str, image: np.ndarray, step: int) -> None:
    """One uint8 [H, W, 3] picture as an image summary."""
    writer = writer_for(logdir)
    with writer.as_default(step=step):
        tf.summary.image(tag, np.asarray(image)[None], max_outputs=1)
    writer.flush()


def write_confusion_matrix(
    logdir: str, tag: str, matrix: np.ndarray, step: int, labels: list[str] | None = None
) -> None:
    """The confusion matrix as the figure of render.labelled_confusion_image.

    Without `labels` the classes are named by their indices.
    """
    labels = labels or [str(i) for i in range(len(matrix))]
    write_image(logdir, tag, render.labelled_confusion_image(matrix, labels), step)


class ProfileWindow:
    """Traces steps [start, stop) with the TF profiler into LOGDIR/plugins/profile.

    Call `step(n)` before each training step (or loop of steps); it starts the
    trace at `start` and stops it at `stop`. `close()` stops a trace still open.
    """

    def __init__(self, logdir: str, start: int, stop: int):
        self.logdir, self.start, self.stop = logdir, start, stop
        self.active = False
        self.done = False

    def step(self, step: int) -> None:
        if not self.active and not self.done and self.start <= step < self.stop:
            tf.profiler.experimental.start(self.logdir)
            self.active = True
        elif self.active and step >= self.stop:
            self.close()

    def close(self) -> None:
        if self.active:
            tf.profiler.experimental.stop()
            self.active = False
            self.done = True
