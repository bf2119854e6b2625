"""One run directory, one process (issue 12.8): a second process is refused with the
holder's PID and host; a lock left by a killed process is recovered and says so; a failed
start leaves no run directory. Two real processes; the lock module imports no TensorFlow.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from tests.helpers.runs import REPO
from visiontrain.training.runlock import LOCK, RunDirInUse, RunLock

HOLDER = textwrap.dedent("""
    import sys, time
    from visiontrain.training.runlock import RunLock
    with RunLock(sys.argv[1], marker="config.json"):
        print("held", flush=True)
        time.sleep(600)
""")


def start_holder(run_dir):
    process = subprocess.Popen([sys.executable, "-c", HOLDER, run_dir], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": REPO})
    assert process.stdout.readline().strip() == "held"
    return process


def test_second_process_is_refused_then_a_killed_holder_is_recovered(tmp_path, caplog):
    run_dir = str(tmp_path / "run")
    holder = start_holder(run_dir)
    try:
        with pytest.raises(RunDirInUse) as err:
            with RunLock(run_dir, marker="config.json"):
                pass
        assert (f"--run_dir={run_dir} is in use by PID {holder.pid} on {socket.gethostname()}"
                in str(err.value))
        assert "pass another --run_dir" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    with caplog.at_level(logging.WARNING):
        with RunLock(run_dir, marker="config.json"):
            pass
    assert (f"Recovered the lock of {run_dir}: PID {holder.pid} on {socket.gethostname()}"
            in caplog.text)
    # A clean release leaves an empty lock: the next run has nothing to recover.
    assert open(os.path.join(run_dir, LOCK)).read() == ""
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        with RunLock(run_dir, marker="config.json"):
            pass
    assert "Recovered" not in caplog.text


def test_a_failed_start_removes_what_it_created(tmp_path):
    run_dir = tmp_path / "fresh"
    with pytest.raises(ValueError):
        with RunLock(str(run_dir), marker="config.json"):
            raise ValueError("preflight failed")
    assert not run_dir.exists()


def test_a_failed_rerun_keeps_the_run(tmp_path):
    run_dir = tmp_path / "run"
    with RunLock(str(run_dir), marker="config.json"):
        (run_dir / "config.json").write_text("{}")
    with pytest.raises(ValueError):
        with RunLock(str(run_dir), marker="config.json"):
            raise ValueError("refused")
    assert sorted(os.listdir(run_dir)) == [LOCK, "config.json"]
    assert (run_dir / LOCK).read_text() == ""
