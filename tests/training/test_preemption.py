"""A Ctrl-C during start-up is never lost (issue 12: Ctrl-C is one line and exit 130).

Python drops an exception raised inside a finaliser; the end-to-end Ctrl-C test
(tests/tools/test_run_dir.py) once trained to the end because of it, under load.
"""

from __future__ import annotations

import os
import signal

import pytest
import tensorflow as tf

from visiontrain.training import preemption


@pytest.fixture
def signals_restored():
    """make_preemption_handler installs TF's SIGTERM handler; the test process keeps its own."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


class CtrlCInFinaliser:
    """Garbage whose finaliser is running when the Ctrl-C arrives."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        # The handler runs at the next bytecode, still inside __del__.
        sum(range(100))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_lost_in_a_finaliser_stops_the_run_before_its_first_step(
        signals_restored, tmp_path):
    previous = signal.getsignal(signal.SIGINT)
    with preemption.sigint_watched() as watcher:
        CtrlCInFinaliser()  # Collected at once: Python prints "Exception ignored" and goes on.
        assert watcher.received
        with pytest.raises(KeyboardInterrupt):
            preemption.make_preemption_handler(
                tf.distribute.get_strategy(), lambda: 0, str(tmp_path))
    assert signal.getsignal(signal.SIGINT) is previous


def test_without_a_ctrl_c_the_handler_takes_sigint_instead_of_a_keyboard_interrupt(
        signals_restored, tmp_path):
    with preemption.sigint_watched():
        handler = preemption.make_preemption_handler(
            tf.distribute.get_strategy(), lambda: 0, str(tmp_path))
        assert isinstance(handler, tf.distribute.experimental.PreemptionCheckpointHandler)
        # Delivered to the handler: no KeyboardInterrupt, the next loop call checkpoints.
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(100))
        with pytest.raises(preemption.Preempted) as stopped:
            handler.save_checkpoint_if_preempted()
            handler.save_checkpoint_if_preempted()
    assert stopped.value.code == preemption.EXIT_INTERRUPTED
