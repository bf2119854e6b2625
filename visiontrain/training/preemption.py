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
Ctrl-C) instead of 42. Before the handler exists (start-up) a Ctrl-C is a
KeyboardInterrupt, which the tool reports in one line; `sigint_watched` also
remembers it, so one that a library swallowed is honoured when the handler is made.
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

    It also takes SIGINT (for as long as `sigint_watched` around the training allows),
    and exits 130 when SIGINT was what stopped the run. A start-up Ctrl-C that
    `sigint_watched` saw but a library swallowed raises KeyboardInterrupt here.

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

    start_up = signal.signal(signal.SIGINT, on_sigint)
    if isinstance(start_up, StartUpCtrlC) and start_up.received:
        # A Ctrl-C during start-up that a library swallowed: stop before the first step.
        raise KeyboardInterrupt
    return handler


class StartUpCtrlC:
    """SIGINT before the checkpointing handler exists: a KeyboardInterrupt, remembered.

    Remembered because it can be lost: Python drops an exception raised inside a
    finaliser (a `__del__`, which TF's and Keras' objects run whenever garbage is
    collected) with an "Exception ignored" line, and bare `except:` clauses in
    libraries swallow it. The run would then train to its end.
    """

    def __init__(self):
        self.received = False

    def __call__(self, signum, frame):
        self.received = True
        raise KeyboardInterrupt


@contextlib.contextmanager
def sigint_watched() -> Iterator[StartUpCtrlC]:
    """Takes SIGINT with a `StartUpCtrlC` until `make_preemption_handler` replaces it;
    gives back the caller's SIGINT handler on leaving."""
    watcher = StartUpCtrlC()
    previous = signal.signal(signal.SIGINT, watcher)
    try:
        yield watcher
    finally:
        signal.signal(signal.SIGINT, previous)
