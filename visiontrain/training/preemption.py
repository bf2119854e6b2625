"""SIGTERM handling: checkpoint at a step every worker agrees on, then exit 42.

`tf.distribute.experimental.PreemptionCheckpointHandler` does the agreement (the
worker that got SIGTERM publishes "save after run N+1" through the coordination
service). We call `save_checkpoint_if_preempted` once per `steps_per_loop` call of
the compiled multi-step function, so a preemption is honoured within one more loop
call (at most `steps_per_loop` steps later). The handler's own checkpoint restore
is bypassed (it would fail hard on a corrupt newest checkpoint): it gets an empty
throwaway manager to read from and saves through our `RunCheckpoints`. Periodic
checkpoints stay on: after SIGKILL the handler has saved nothing.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Callable

import tensorflow as tf

# Exit status of a run stopped by SIGTERM after a good checkpoint: restart it with
# the same flags to resume (Borg uses the same code).
EXIT_PREEMPTED = 42


class Preempted(SystemExit):
    """Raised after the preemption checkpoint is written; exits the process with 42."""

    def __init__(self, step: int):
        super().__init__(EXIT_PREEMPTED)
        self.step = step


def make_preemption_handler(
    strategy: tf.distribute.Strategy, save: Callable[[], int]
) -> tf.distribute.experimental.PreemptionCheckpointHandler:
    """A handler whose save calls `save()` (returns the saved step) and then exits 42."""
    saved = {}

    def save_fn():
        saved["step"] = save()

    def exit_fn():
        step = saved.get("step", -1)
        logging.warning("Preempted (SIGTERM): checkpoint saved at step %d; exiting with code %d "
                        "- restart with the same flags to resume.", step, EXIT_PREEMPTED)
        raise Preempted(step)

    throwaway = tf.train.CheckpointManager(
        tf.train.Checkpoint(), tempfile.mkdtemp(prefix="visiontrain-preempt-"), max_to_keep=1
    )
    resolver = getattr(strategy, "cluster_resolver", None)
    return tf.distribute.experimental.PreemptionCheckpointHandler(
        resolver, throwaway,
        termination_config=tf.distribute.experimental.TerminationConfig(
            exit_fn=exit_fn, save_fn=save_fn
        ),
    )
