"""`visiontrain-train` reruns into one run directory, end to end (issue 12.3, 12.4, 12.8,
12.9, 12.14, 12.17).

One finished 1-epoch run on the digits is copied for each rerun. A refused rerun must
leave every file of the run byte-identical; an allowed one is logged and resumes. The
per-flag policy is checked fast in tests/training/test_resume_policy.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import time

import pytest

from tests.helpers.runs import (
    TINY_RUN_FLAGS,
    checkpoint_steps,
    run_train,
    start_train,
    wait_for_log,
)

pytestmark = pytest.mark.slow

FLAGS = TINY_RUN_FLAGS


@pytest.fixture
def finished(tiny_run):
    """The session's TINY run (conftest.py), trained with FLAGS; copy_run before changing it."""
    return tiny_run


def copy_run(finished, tmp_path):
    run_dir = str(tmp_path / "run")
    shutil.copytree(finished[0], run_dir)
    return run_dir


def snapshot(run_dir):
    files = {}
    for directory, _, names in os.walk(run_dir):
        for name in names:
            path = os.path.join(directory, name)
            files[os.path.relpath(path, run_dir)] = open(path, "rb").read()
    return files


def error_lines(stdout):
    return [line for line in stdout.splitlines() if ": error: " in line]


def test_the_log_prints_each_line_once_with_progress_and_right_plurals(finished):
    log = finished[1]
    # The Python log lines (TF's and ours, through absl): the prefix (level, time, thread,
    # file:line) differs per line, the message must not. TF's C++ start-up lines are not
    # Python logging and are left out.
    prefix = r"^[IWE]\d{4} [\d:.]+ +\d+ \S+\.py:\d+\] "
    messages = [re.sub(prefix, "", line) for line in log.splitlines() if re.match(prefix, line)]
    assert "INFO:tensorflow:" not in log
    repeated = {m for m in messages if messages.count(m) > 1 and "Sharding callback" not in m}
    assert not repeated, repeated
    progress = [m for m in messages if m.startswith("Step ")]
    # --progress_every_s=0: a line at every boundary of the 4-step calls of 23 steps.
    assert [m.split()[1] for m in progress] == [f"{s}/23" for s in (4, 8, 12, 16, 20, 23)]
    assert re.fullmatch(r"Step 4/23 \(17%\), epoch 1/1: loss \d+\.\d{4}, \d+ img/s, "
                        r"ETA \d:\d\d:\d\d", progress[0])
    assert "1 replica)" in log and "4 files over 1 input pipeline)" in log
    assert "phase 2" not in log


def test_a_rerun_that_changes_the_meaning_is_refused_and_touches_nothing(
        finished, digits, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    # The headline case: another dataset with the same class count and another label map.
    other = str(tmp_path / "relabelled")
    shutil.copytree(digits, other)
    manifest = json.load(open(os.path.join(other, "manifest.json")))
    manifest["labels"] = manifest["labels"][::-1]
    json.dump(manifest, open(os.path.join(other, "manifest.json"), "w"))
    before = snapshot(run_dir)
    result = run_train(other, run_dir, *FLAGS, "--image_size=10", "--global_batch_size=32",
                       "--eval_every=2")
    assert result.returncode == 2, result.stdout[-3000:]
    (line,) = error_lines(result.stdout)
    for change in ("--global_batch_size: 64 -> 32", "--image_size: 8 -> 10",
                   "--data_dir (the data; the same counts, other images or labels): 10 "
                   "classes, single-label, records: train 1500",
                   "--data_dir (the label map): ['0', '1', "):
        assert change in line
    assert "--eval_every" not in line, "an allowed change is not a reason to refuse"
    assert "Pass a new --run_dir" in line and f"--flagfile={run_dir}/flags.txt" in line
    assert "Traceback" not in result.stdout
    assert snapshot(run_dir) == before


def test_a_rerun_that_keeps_the_meaning_is_logged_and_resumes(finished, digits, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    result = run_train(digits, run_dir, *FLAGS[1:], "--epochs=2", "--eval_every=2",
                       "--progress_every_s=30")
    assert result.returncode == 0, result.stdout[-3000:]
    # The copy moved the run, so --run_dir is one of the allowed changes too.
    assert (f"with changes that keep its meaning: --epochs: 1 -> 2; --eval_every: 1 -> 2; "
            f"--progress_every_s: 0.0 -> 30.0; --run_dir: {finished[0]} -> {run_dir}."
            in result.stdout)
    assert "resuming at step 23" in result.stdout
    assert json.load(open(os.path.join(run_dir, "results.json")))["step"] == 46
    assert "--epochs=2" in open(os.path.join(run_dir, "flags.txt")).read()


def test_a_failed_start_leaves_no_run_directory(digits, tmp_path):
    broken = str(tmp_path / "broken")
    shutil.copytree(digits, broken)
    os.remove(os.path.join(broken, "train-00001-of-00004.tfrecord"))
    run_dir = tmp_path / "run"
    result = run_train(broken, str(run_dir), *FLAGS)
    assert result.returncode == 2, result.stdout[-3000:]
    assert "1 problem(s) with the shards" in error_lines(result.stdout)[0]
    assert "train-00001-of-00004.tfrecord: missing" in result.stdout
    assert not run_dir.exists()


def test_a_damaged_shard_is_named_with_its_offset(digits, tmp_path):
    damaged = str(tmp_path / "damaged")
    shutil.copytree(digits, damaged)
    shard = os.path.join(damaged, "train-00002-of-00004.tfrecord")
    data = bytearray(open(shard, "rb").read())
    # Inside a record's bytes, so sizes and counts still match the manifest.
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    open(shard, "wb").write(bytes(data))
    result = run_train(damaged, str(tmp_path / "run"), *FLAGS)
    assert result.returncode == 2, result.stdout[-3000:]
    (line,) = error_lines(result.stdout)
    assert re.search(rf"shard {re.escape(shard)} is damaged at byte offset \d+", line), line
    assert f"visiontrain-data verify {damaged}" in line
    assert "Traceback" not in result.stdout and "DataLossError" not in result.stdout


def test_a_second_training_is_refused_and_a_killed_ones_lock_recovered(digits, tmp_path):
    run_dir, log = str(tmp_path / "run"), str(tmp_path / "log")
    flags = ("--steps_per_loop=2", "--checkpoint_every_steps=4")
    # Long enough to be still running when killed; the rerun shortens it (an allowed change).
    first = start_train(digits, run_dir, *flags, "--epochs=30", log_path=log)
    deadline = time.time() + 240
    while not [s for s in checkpoint_steps(run_dir) if s >= 4]:
        assert first.poll() is None and time.time() < deadline, open(log).read()[-3000:]
        time.sleep(0.2)
    try:
        second = run_train(digits, run_dir, *flags, "--epochs=30")
        assert second.returncode == 2, second.stdout[-3000:]
        (line,) = error_lines(second.stdout)
        assert f"is in use by PID {first.pid} on {socket.gethostname()}" in line
        assert first.poll() is None, "the first run must die holding the lock"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    resumed = run_train(digits, run_dir, *flags, "--epochs=1")
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert f"Recovered the lock of {run_dir}: PID {first.pid}" in resumed.stdout
    assert "resuming at step" in resumed.stdout


def test_ctrl_c_while_starting_is_one_line_and_exit_130(digits, tmp_path):
    run_dir, log = str(tmp_path / "run"), str(tmp_path / "log")
    # Long enough that the signal cannot arrive after the last step on a busy machine.
    process = start_train(digits, run_dir, *FLAGS, "--epochs=30", log_path=log)
    # The pre-flight has run: the tool is in its main, building the run.
    wait_for_log(process, log, "Input sharding")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130, open(log).read()[-3000:]
    text = open(log).read()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    # Before the first step, or (on a fast machine) at the first step boundary.
    lines = [line for line in text.splitlines()
             if "interrupted during start-up" in line or "Interrupted (Ctrl-C)" in line]
    assert len(lines) == 1, text[-3000:]


def test_evaluate_and_export_fall_back_from_a_damaged_newest_checkpoint(finished, tmp_path,
                                                                        absl_caplog):
    """Both tools load a run through rundir.load_weights, which skips a damaged newest
    checkpoint as training does, names it, and drops the figures measured on it."""
    import tensorflow as tf

    from visiontrain.errors import UserError
    from visiontrain.training import rundir

    run_dir = copy_run(finished, tmp_path)
    checkpoints = os.path.join(run_dir, "checkpoints")
    newest = tf.train.latest_checkpoint(checkpoints)
    # An older checkpoint with the same weights, listed before the newest.
    older = os.path.join(checkpoints, "ckpt-1")
    for name in os.listdir(checkpoints):
        if name.startswith(os.path.basename(newest) + "."):
            shutil.copy(os.path.join(checkpoints, name),
                        os.path.join(checkpoints, name.replace(os.path.basename(newest), "ckpt-1")))
    with open(os.path.join(checkpoints, "checkpoint"), "w") as f:  # the state file's format
        f.write(f'model_checkpoint_path: "{newest}"\nall_model_checkpoint_paths: "{older}"\n'
                f'all_model_checkpoint_paths: "{newest}"\n')
    data = newest + ".data-00000-of-00001"
    open(data, "wb").write(open(data, "rb").read()[:100])

    run = rundir.load_weights(run_dir)
    assert run.checkpoint == older and "validation" not in run.results
    assert f"{newest} is unreadable" in absl_caplog.text
    open(older + ".data-00000-of-00001", "wb").write(b"")
    with pytest.raises(UserError, match="None of the checkpoints of .* could be restored"):
        rundir.load_weights(run_dir)


def test_ctrl_c_in_export_is_one_line_and_the_next_export_cleans_up(finished, tmp_path):
    """Exit 130 with one line, no traceback; a killed export's temporary version folder
    (and an interrupted one's, were it left) is removed by the next export."""
    import subprocess
    import sys

    from tests.helpers.runs import env

    export_dir = tmp_path / "export"
    (export_dir / ".tmp-7-99999").mkdir(parents=True)  # as a kill -9 leaves it
    command = [sys.executable, "-m", "visiontrain.tools.export", f"--run_dir={finished[0]}",
               f"--export_dir={export_dir}"]
    process = subprocess.Popen(command, env=env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not [p for p in export_dir.iterdir() if p.name.startswith(".tmp-1-")]:
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.05)
    assert not (export_dir / ".tmp-7-99999").exists()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == (
        "visiontrain-export: error: interrupted; nothing was published, rerun the same "
        "command to do it again")
    assert sorted(p.name for p in export_dir.iterdir()) == [".lock"]


def test_an_unwritable_location_is_refused_before_any_work(finished, tmp_path):
    import subprocess
    import sys

    from tests.helpers.runs import env

    blocked = tmp_path / "file"
    blocked.write_text("a file where a directory should be")
    result = subprocess.run([sys.executable, "-m", "visiontrain.tools.export",
                             f"--run_dir={finished[0]}", f"--export_dir={blocked}/export"],
                            env=env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"visiontrain-export: error: --export_dir={blocked}/export cannot be written (")


def test_a_start_that_fails_after_binding_leaves_no_run_directory(digits, tmp_path):
    """A missing --pretrained file fails once the run is bound; the fix then just runs."""
    run_dir = tmp_path / "run"
    result = run_train(digits, str(run_dir), *FLAGS, f"--pretrained={tmp_path}/missing.h5")
    assert result.returncode == 2, result.stdout[-3000:]
    assert "missing.h5" in error_lines(result.stdout)[0]
    assert not run_dir.exists()
    result = run_train(digits, str(run_dir), *FLAGS)
    assert result.returncode == 0, result.stdout[-3000:]
