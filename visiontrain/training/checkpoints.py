"""Checkpoints that never lose a step: periodic saves, restore with fallback, best.

The data position is not stored as an iterator (MirroredStrategy's distributed
iterators are not trackable); it is derived from the step, because each epoch's
record order is a pure function of the seed (see pipelines/datasets.py).

Layout and how to get weights back (the exporter's contract):

    RUN_DIR/checkpoints/ckpt-STEP*     newest `keep_checkpoints` (model, optimizer, step, ema,
                                       and the random-layer states, rng, when there are any;
                                       checkpoints of earlier versions have no rng)
    RUN_DIR/checkpoints/best/ckpt-STEP* the best by validation accuracy (same objects)
    RUN_DIR/checkpoints/best/best.json {"step", "accuracy", "weights": "raw"|"ema"}
    RUN_DIR/checkpoints/top/ckpt-STEP* the N best by raw validation accuracy, kept for
                                       --average_checkpoints=N --average_of=best
    RUN_DIR/checkpoints/top/top.json   [{"step", "accuracy"}], best first
    RUN_DIR/best.weights.h5            the winning weights of the best evaluation, already
                                       EMA-swapped when "weights" is "ema":
                                       `model.load_weights(path)` is all an exporter needs.

To restore the EMA from a checkpoint instead: build the model, then
`ema = WeightAverage(model, decay=0.5)`; `tf.train.Checkpoint(model=model, ema=ema)
.restore(path).expect_partial()`; `ema.copy_to_model()`. results.json says under
"weights" which of the two the final metrics were measured with.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import Callable

import keras
import tensorflow as tf

from visiontrain import fileio
from visiontrain.config import TrainConfig
from visiontrain.errors import UserError
from visiontrain.models.pretrained import RUN_BEST_WEIGHTS
from visiontrain.training import rundir
from visiontrain.training.ema import WeightAverage

BEST = "best"
BEST_RECORD = "best.json"
BEST_WEIGHTS = RUN_BEST_WEIGHTS
TOP = "top"
TOP_RECORD = "top.json"
RNG = "rng"


def holds(path: str, name: str) -> bool:
    """Whether the checkpoint at `path` holds the object saved as `name`."""
    return any(key.split("/")[0] == name for key, _ in tf.train.list_variables(path))


class RunCheckpoints:
    """Model + optimizer + step (+ EMA) checkpoints of one run, and the best one.

    On a multi-worker job every worker must call save (it is a collective), but only
    the chief writes into the run directory; the others write to a temporary
    directory that `close` removes. Every worker restores from, and reads the best record
    of, the chief's directory (a shared filesystem), so all resume at one step and
    take the same best-checkpoint decisions.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        strategy: tf.distribute.Strategy,
        chief: bool,
        ema: WeightAverage | None = None,
        before_save: Callable[[], None] = lambda: None,
    ):
        # Runs before anything is written, e.g. to make the replicas' copies agree.
        self.before_save = before_save
        self.every = config.checkpoint_every_steps
        self.keep = config.keep_checkpoints
        self.model = model
        self.run_dir = config.run_dir
        self.directory = os.path.join(config.run_dir, rundir.CHECKPOINTS)
        self.chief_directory = self.directory
        if not chief:
            self.directory = tempfile.mkdtemp(prefix="visiontrain-worker-ckpt-")
        self._chief = chief
        # The step this process last saved or restored: a corrupt newest checkpoint
        # skipped by restore_latest must be overwritten, not taken as already saved.
        self._saved_step = -1
        # The loop's own counter: optimizer.iterations lags it when a float16 loss
        # scale skips a step on inf gradients.
        self.step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        objects = dict(model=model, optimizer=optimizer, step=self.step_var)
        if ema is not None:
            objects["ema"] = ema
        # The states of Keras' stateful random layers (Dropout, DropPath) are not model
        # weights; without them a resumed run would redraw the masks it already used.
        self.rng = [v.value for v in model.variables if v.path.endswith("seed_generator_state")]
        self.draws_per_step = config.grad_accum_steps
        # Checkpoints of runs begun before the random-layer states were kept have no "rng".
        self.checkpoint_without_rng = tf.train.Checkpoint(**objects)
        if self.rng:
            objects[RNG] = self.rng
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.directory, max_to_keep=config.keep_checkpoints
        )
        self.best_manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(self.directory, BEST), max_to_keep=1
        )
        # Read once, from the chief's directory, then kept in step on every worker.
        path = os.path.join(self.chief_directory, TOP, TOP_RECORD)
        self.top = json.load(open(path)) if os.path.exists(path) else []

    def step(self) -> int:
        return int(self.step_var.numpy())

    def restore_latest(self) -> int:
        """Restores the newest readable checkpoint; returns the step it holds (0 if none).

        A corrupt newest checkpoint is skipped with a log line naming it, and the
        previous one is tried: never a silent fresh start.
        """
        # A manager re-reads the chief's directory state, which the chief keeps writing.
        manager = self.manager if self._chief else tf.train.CheckpointManager(
            self.checkpoint, self.chief_directory, max_to_keep=self.keep
        )
        candidates = list(reversed(manager.checkpoints))
        for path in candidates:
            try:
                self._restore(path)
            # A truncated data file surfaces as IndexError ("Read less bytes than requested").
            except (tf.errors.OpError, AssertionError, ValueError, IndexError) as err:
                logging.warning("Checkpoint %s is unreadable (%s); trying the previous one.",
                                path, str(err).splitlines()[0])
                continue
            logging.info("Restored %s: resuming at step %d.", path, self.step())
            self._saved_step = self.step()
            return self.step()
        if candidates:
            raise UserError(
                f"None of the checkpoints in {self.directory} could be restored; move them "
                "away to start afresh."
            )
        return 0

    def _restore(self, path: str) -> None:
        """Restores `path`, and the random-layer states it predates when it has none.

        Keras' SeedGenerator state is [seed, draws so far] and each random layer draws
        once per forward pass in training, i.e. `grad_accum_steps` times per step; so a
        checkpoint written before the states were kept restores them as the uninterrupted
        run had them at its step.
        """
        if not self.rng or holds(path, RNG):
            self.checkpoint.restore(path).assert_existing_objects_matched()
            return
        self.checkpoint_without_rng.restore(path).assert_existing_objects_matched()
        draws = self.step() * self.draws_per_step
        for state in self.rng:
            state.assign(tf.stack([state[0], tf.constant(draws, state.dtype)]))
        logging.warning("Checkpoint %s predates the random-layer states (Dropout, DropPath); "
                        "they are set to the draws an uninterrupted run makes by step %d.",
                        path, self.step())

    def steps_to_next_save(self, step: int) -> int:
        return self.every - step % self.every if self.every else 1 << 30

    def maybe_save(self, step: int) -> None:
        if self.every and step % self.every == 0:
            self.save(step)

    def save(self, step: int) -> int:
        """Saves unless the newest checkpoint already holds `step`; returns `step`."""
        if step != self._saved_step:
            self.before_save()
            self.step_var.assign(step)
            self.manager.save(checkpoint_number=step)
            self._saved_step = step
        return step

    def best_record(self) -> dict:
        path = os.path.join(self.chief_directory, BEST, BEST_RECORD)
        if not os.path.exists(path):
            return {"accuracy": -1.0}
        with open(path) as f:
            return json.load(f)

    def save_best(self, step: int, accuracy: float, weights: str,
                  ema: WeightAverage | None) -> dict:
        """Keeps the checkpoint of `step` as the best and writes best.weights.h5.

        `weights` ("raw" or "ema") names which weights scored `accuracy`; the .h5 file
        holds exactly those.
        """
        self.before_save()
        self.step_var.assign(step)
        self.best_manager.save(checkpoint_number=step)
        record = {"step": step, "accuracy": accuracy, "weights": weights,
                  "checkpoint": self.best_manager.latest_checkpoint}
        if self._chief:
            if weights == "ema":
                ema.swap()
            try:
                tmp = fileio.temp_path(os.path.join(self.run_dir, BEST_WEIGHTS))
                self.model.save_weights(tmp)
                fileio.publish(tmp, os.path.join(self.run_dir, BEST_WEIGHTS))
            finally:
                if weights == "ema":
                    ema.swap()
            fileio.write_json_atomic(os.path.join(self.directory, BEST, BEST_RECORD), record)
        return record

    def save_top(self, step: int, accuracy: float, keep: int) -> None:
        """Keeps the checkpoint of `step` if it is among the `keep` best by `accuracy`."""
        if any(record["step"] == step for record in self.top):
            return
        ranked = sorted([*self.top, {"step": step, "accuracy": accuracy}],
                        key=lambda record: (-record["accuracy"], record["step"]))
        self.top, dropped = ranked[:keep], ranked[keep:]
        top_dir = os.path.join(self.directory, TOP)
        if any(record["step"] == step for record in self.top):
            self.before_save()
            self.step_var.assign(step)
            self.checkpoint.write(os.path.join(top_dir, f"ckpt-{step}"))
        for record in dropped:
            for name in tf.io.gfile.glob(os.path.join(top_dir, f"ckpt-{record['step']}.*")):
                tf.io.gfile.remove(name)
        if self._chief:
            fileio.write_json_atomic(os.path.join(top_dir, TOP_RECORD), self.top)

    def average_paths(self, source: str, count: int) -> list[str]:
        """The checkpoints to average: the `count` newest ("last", step 0 left out) or the
        `count` best by validation accuracy ("best"), this process's copies."""
        if source == "best":
            return [os.path.join(self.directory, TOP, f"ckpt-{record['step']}")
                    for record in self.top]
        trained = [path for path in self.manager.checkpoints if not path.endswith("ckpt-0")]
        return trained[-count:]

    def latest_path(self) -> str | None:
        return self.manager.latest_checkpoint if self._chief else None

    def close(self) -> None:
        """Removes a non-chief worker's temporary checkpoint directory."""
        if not self._chief:
            shutil.rmtree(self.directory, ignore_errors=True)
