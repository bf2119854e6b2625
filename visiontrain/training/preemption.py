"""SIGTERM and Ctrl-C: checkpoint at a step every worker agrees on, then exit 42 / 130.

`tf.distribute.experimental.PreemptionCheckpointHandler` does the agreement (the
worker that got SIGTERM publishes "save after run N+1" through the coordination
service). We call `save_checkpoint_if_preempted` once per `steps_per_loop` call of
the compiled multi-step function, so a preemption is honoured within one more loop
call (at most `steps_per_loop` steps later). The handler's own checkpoint restore
is bypassed (it would fail hard on a corrupt newest checkpoint): it gets an empty
throwaway manager to read from and saves through our `RunCheckpoints`. Periodic
checkpoints stay on: after SIGKILL the handler has saved nothing.

SIGINT (Ctrl-C) takes the same path: while the handler lives, SIGINT is handed to
TF's SIGTERM handler, and the run exits 130 (128 + SIGINT, the shell's code for
Ctrl-C) instead of 42. Before the handler exists (start-up) a Ctrl-C is Python's
KeyboardInterrupt, which the tool reports in one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Callable, Iterator

import tensorflow as tf

# Exit status of a run stopped by SIGTERM after a good checkpoint: restart it with
# the same flags to resume (Borg uses the same code).
EXIT_PREEMPTED = 42
# 128 + SIGINT: what a shell reports for a process ended by Ctrl-C.
EXIT_INTERRUPTED = 130


class Preempted(SystemExit):
    """Raised after the preemption checkpoint is written; exits with 42 (130 for SIGINT)."""

    def __init__(self, step: int, code: int = EXIT_PREEMPTED):
        super().__init__(code)
        self.step = step


def make_preemption_handler(
    strategy: tf.distribute.Strategy, save: Callable[[], int], scratch_dir: str
) -> tf.distribute.experimental.PreemptionCheckpointHandler:
    """A handler whose save calls `save()` (returns the saved step) and then exits 42.

    It also takes SIGINT (for as long as `sigint_restored` around the training allows),
    and exits 130 when SIGINT was what stopped the run.

    Args:
      strategy: the run's strategy.
      save: writes the run's checkpoint and returns its step.
      scratch_dir: an empty directory the caller removes after training. It holds the
        throwaway manager's directory and, on a non-chief worker, the `workertemp_N`
        directory TF creates next to it.
    """
    saved = {}
    received = {"signal": "SIGTERM"}

    def save_fn():
        saved["step"] = save()

    def exit_fn():
        step = saved.get("step", -1)
        if received["signal"] == "SIGINT":
            logging.warning("Interrupted (Ctrl-C): checkpoint saved at step %d; exiting with "
                            "code %d - rerun the same command to resume.", step,
                            EXIT_INTERRUPTED)
            raise Preempted(step, EXIT_INTERRUPTED)
        logging.warning("Preempted (SIGTERM): checkpoint saved at step %d; exiting with code %d "
                        "- restart with the same flags to resume.", step, EXIT_PREEMPTED)
        raise Preempted(step)

    throwaway = tf.train.CheckpointManager(
        tf.train.Checkpoint(), os.path.join(scratch_dir, "unused"), max_to_keep=1
    )
    resolver = getattr(strategy, "cluster_resolver", None)
    handler = tf.distribute.experimental.PreemptionCheckpointHandler(
        resolver, throwaway,
        termination_config=tf.distribute.experimental.TerminationConfig(
            exit_fn=exit_fn, save_fn=save_fn
        ),
    )
    on_sigterm = signal.getsignal(signal.SIGTERM)  # TF's, installed by the handler

    def on_sigint(signum, frame):
        received["signal"] = "SIGINT"
        on_sigterm(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)
    return handler


@contextlib.contextmanager
def sigint_restored() -> Iterator[None]:
    """Gives back the caller's SIGINT handler on leaving, which the handler above replaces."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
