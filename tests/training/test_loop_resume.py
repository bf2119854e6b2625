"""Never lose a step: kill -9, SIGTERM, a corrupt checkpoint and NaN losses.

Each run is a subprocess of `visiontrain-train` on the digits (46 steps of small_cnn);
with --deterministic an interrupted-and-resumed run must end bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.runs import (
    checkpoint_steps,
    model_weights,
    run_train,
    start_train,
    step_and_iterations,
    wait_for_log,
)

pytestmark = pytest.mark.slow

FLAGS = ("--epochs=2", "--steps_per_loop=2", "--checkpoint_every_steps=4", "--ema_decay=0.9")
TOTAL_STEPS = 46


@pytest.fixture(scope="module")
def reference(digits, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("reference"))
    result = run_train(digits, run_dir, *FLAGS)
    assert result.returncode == 0, result.stdout[-3000:]
    return run_dir


def final_checkpoint(run_dir):
    return os.path.join(run_dir, "checkpoints", f"ckpt-{TOTAL_STEPS}")


def assert_same_as_reference(run_dir, reference):
    assert step_and_iterations(final_checkpoint(run_dir)) == (TOTAL_STEPS, TOTAL_STEPS)
    got, want = model_weights(final_checkpoint(run_dir)), model_weights(final_checkpoint(reference))
    assert got.keys() == want.keys() and any(k.startswith("ema/") for k in got)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert results["step"] == TOTAL_STEPS and results["weights"] in ("raw", "ema")


def wait_for_checkpoint(process, run_dir, min_step, log_path):
    deadline = time.time() + 240
    while not [step for step in checkpoint_steps(run_dir) if step >= min_step]:
        assert process.poll() is None, open(log_path).read()[-3000:]
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.2)


def signal_mid_training(process, log_path, signum):
    """Delivers `signum` while steps remain, however fast the machine runs them.

    The whole run takes a second or two, and a signal that lands after the last loop call
    is never acted on (the run ends normally). The process is stopped as soon as it logs
    "Training" (the handler is in place by then), signalled, and continued: the signal is
    taken at its next loop call, with nearly every step still to run.
    """
    wait_for_log(process, log_path, "Training small_cnn")
    process.send_signal(signal.SIGSTOP)
    process.send_signal(signum)
    process.send_signal(signal.SIGCONT)


def test_kill_9_then_restart_is_bit_identical(digits, reference, tmp_path):
    run_dir, log = str(tmp_path / "run"), str(tmp_path / "log")
    process = start_train(digits, run_dir, *FLAGS, log_path=log)
    wait_for_checkpoint(process, run_dir, random.randint(4, 24), log)
    process.kill()
    process.wait()
    # The newest checkpoint the state file lists: a kill between a checkpoint's files and
    # the state file's update leaves that checkpoint unlisted, and it is not resumed from.
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    killed_at = int(latest.rsplit("-", 1)[1])
    result = run_train(digits, run_dir, *FLAGS)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"resuming at step {killed_at}" in result.stdout
    assert_same_as_reference(run_dir, reference)


@pytest.mark.parametrize("signum,code,line", [
    (signal.SIGTERM, 42, "Preempted (SIGTERM): checkpoint saved at step"),
    # SIGINT is handled like SIGTERM (issue 12.11): one line, no traceback, exit 130.
    (signal.SIGINT, 130, "Interrupted (Ctrl-C): checkpoint saved at step"),
], ids=["sigterm", "ctrl_c"])
def test_signal_saves_exits_and_restart_is_bit_identical(digits, reference, tmp_path, signum,
                                                         code, line):
    run_dir, log = str(tmp_path / "run"), str(tmp_path / "log")
    # Checkpoints only at epoch ends: the signal's must be the mid-epoch one.
    flags = (*FLAGS[:2], "--checkpoint_every_steps=0", FLAGS[3])
    process = start_train(digits, run_dir, *flags, log_path=log)
    signal_mid_training(process, log, signum)
    assert process.wait(timeout=120) == code, open(log).read()[-3000:]
    text = open(log).read()
    assert len([row for row in text.splitlines()
                if line in row and f"exiting with code {code}" in row]) == 1, text[-2000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    saved = max(checkpoint_steps(run_dir))
    assert 0 < saved < TOTAL_STEPS, text[-2000:]
    result = run_train(digits, run_dir, *flags)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"resuming at step {saved}" in result.stdout
    assert_same_as_reference(run_dir, reference)


def test_truncated_newest_checkpoint_falls_back_to_the_previous(digits, reference, tmp_path):
    run_dir = str(tmp_path / "run")
    os.makedirs(os.path.join(run_dir, "checkpoints"))
    # A copy of the reference's checkpoints with the newest data file cut in half.
    import shutil

    shutil.copytree(os.path.join(reference, "checkpoints"), os.path.join(run_dir, "checkpoints"),
                    dirs_exist_ok=True)
    steps = checkpoint_steps(run_dir)
    newest = os.path.join(run_dir, "checkpoints", f"ckpt-{steps[-1]}.data-00000-of-00001")
    data = open(newest, "rb").read()
    open(newest, "wb").write(data[: len(data) // 2])
    result = run_train(digits, run_dir, *FLAGS)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"ckpt-{steps[-1]} is unreadable" in result.stdout
    assert f"resuming at step {steps[-2]}" in result.stdout
    assert_same_as_reference(run_dir, reference)


def test_nan_loss_retries_then_stops_naming_the_step(digits, tmp_path):
    result = run_train(digits, str(tmp_path / "run"), "--epochs=1", "--base_lr=1e30",
                       "--max_nan_retries=1", "--steps_per_loop=4")
    assert result.returncode == 2, result.stdout[-3000:]
    assert "restored the last good checkpoint (step 0), retry 1 of 1" in result.stdout
    assert "Training loss is nan at step 4 after 1 retries" in result.stdout
    assert "Traceback" not in result.stdout
