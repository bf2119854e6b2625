"""--early_stop_patience: the decision from the best record and the step, and a run it stops."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.runs import checkpoint_steps, run_train
from visiontrain.training.early_stop import stop_record


def test_stops_only_after_patience_epochs_without_a_better_accuracy():
    best = {"step": 20, "accuracy": 0.9}  # epoch 2 of 10 steps each
    assert stop_record(best, 30, 10, 2) is None
    assert stop_record(best, 39, 10, 2) is None  # mid-epoch (a resume): still epoch 3
    record = stop_record(best, 40, 10, 2)
    assert record["epoch"] == 4 and record["best_epoch"] == 2 and record["patience"] == 2
    assert "not improved for 2 epochs (best 0.9000 at epoch 2" in record["reason"]
    assert stop_record(best, 40, 10, 0) is None
    assert stop_record({"accuracy": -1.0}, 40, 10, 1) is None


@pytest.mark.slow
def test_a_run_that_cannot_improve_stops_and_records_why(digits, tmp_path):
    # LR 0: only the BatchNorm statistics move, so accuracy stalls within a few epochs.
    run_dir = str(tmp_path / "run")
    flags = ("--epochs=10", "--base_lr=0", "--early_stop_patience=2",
             "--checkpoint_every_steps=0")
    result = run_train(digits, run_dir, *flags)
    assert result.returncode == 0, result.stdout[-3000:]
    results = json.load(open(os.path.join(run_dir, "results.json")))
    stopped = results["early_stop"]
    assert stopped["epoch"] == stopped["best_epoch"] + 2 < 10
    assert results["step"] == stopped["epoch"] * 23 == results["best"]["step"] + 2 * 23
    assert (f"Stopped early at epoch {stopped['epoch']} of 10: validation accuracy has not "
            "improved for 2 epochs") in result.stdout
    # A rerun of the stopped run resumes into the same decision: it trains no further step.
    rerun = run_train(digits, run_dir, *flags)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert f"Stopped early at epoch {stopped['epoch']} of 10" in rerun.stdout
    assert max(checkpoint_steps(run_dir)) == results["step"]
    assert json.load(open(os.path.join(run_dir, "results.json")))["early_stop"] == stopped
