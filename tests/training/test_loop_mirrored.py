"""MirroredStrategy over 2 logical CPUs matches one-device training (sync BN).

That its validation figures are the saved checkpoint's (per-replica BN) is asserted on
the 2-replica run of tests/tools/test_end_to_end.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.helpers.runs import model_weights, run_train

pytestmark = pytest.mark.slow

# 23 float32 steps at LR 0.1 with a different summation order drift by ~1e-4;
# a wrong loss scaling (e.g. per-replica mean) would be off by far more.
FLAGS = ("--sync_bn", "--epochs=1", "--steps_per_loop=8",
         "--checkpoint_every_steps=0")


def test_two_replicas_match_one_device(digits, tmp_path):
    weights = {}
    for name, strategy in (("one", "--strategy=one_device"), ("two", "--cpu_replicas=2")):
        run_dir = str(tmp_path / name)
        result = run_train(digits, run_dir, *FLAGS, strategy)
        assert result.returncode == 0, result.stdout[-3000:]
        weights[name] = model_weights(os.path.join(run_dir, "checkpoints", "ckpt-23"))
    assert weights["one"].keys() == weights["two"].keys()
    for key, value in weights["one"].items():
        np.testing.assert_allclose(weights["two"][key], value, rtol=2e-2, atol=2e-3,
                                   err_msg=key)
