"""Checkpoints that never lose a step: periodic saves, restore with fallback.

The data position is not stored as an iterator (MirroredStrategy's distributed
iterators are not trackable); it is derived from the step, because each epoch's
record order is a pure function of the seed (see pipelines/datasets.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from visiontrain.config import TrainConfig
from visiontrain.training import rundir


class RunCheckpoints:
    """Model + optimizer (+ step) checkpoints of one run.

    On a multi-worker job every worker must call save (it is a collective), but only
    the chief writes into the run directory; the others write to a temporary
    directory that is removed.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        strategy: tf.distribute.Strategy,
        chief: bool,
    ):
        self.every = config.checkpoint_every_steps
        self.optimizer = optimizer
        self.directory = os.path.join(config.run_dir, rundir.CHECKPOINTS)
        if not chief:
            self.directory = tempfile.mkdtemp(prefix="visiontrain-worker-ckpt-")
        self._chief = chief
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.directory, max_to_keep=config.keep_checkpoints
        )

    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore_latest(self) -> int:
        """Restores the newest readable checkpoint; returns the step it holds (0 if none).

        A corrupt newest checkpoint is skipped with a log line naming it, and the
        previous one is tried: never a silent fresh start.
        """
        candidates = list(reversed(self.manager.checkpoints))
        for path in candidates:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (tf.errors.OpError, AssertionError, ValueError) as err:
                logging.warning("Checkpoint %s is unreadable (%s); trying the previous one.",
                                path, str(err).splitlines()[0])
                continue
            logging.info("Restored %s: resuming at step %d.", path, self.step())
            return self.step()
        if candidates:
            raise RuntimeError(
                f"None of the checkpoints in {self.directory} could be restored; move them "
                "away to start afresh."
            )
        return 0

    def steps_to_next_save(self, step: int) -> int:
        return self.every - step % self.every if self.every else 1 << 30

    def maybe_save(self, step: int) -> None:
        if self.every and step % self.every == 0:
            self.save(step)

    def save(self, step: int) -> None:
        """Saves unless the newest checkpoint already holds `step`."""
        if self.manager.latest_checkpoint != self._path_for(step):
            self.manager.save(checkpoint_number=step)

    def latest_path(self) -> str | None:
        return self.manager.latest_checkpoint if self._chief else None

    def _path_for(self, step: int) -> str:
        return os.path.join(self.directory, f"ckpt-{step}")

    def __del__(self):
        if not self._chief:
            shutil.rmtree(self.directory, ignore_errors=True)
