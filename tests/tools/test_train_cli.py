"""Bad `visiontrain-train` invocations: a clear error before any training step.

Two subprocess cases cover the tool's error path (exit status, one line, no
traceback); the other checks run in-process on the functions the tool calls.
"""

from __future__ import annotations

import types

import pytest
from absl import flags

from tests.helpers.runs import run_train
from visiontrain.flags.definitions import check_model_name, resolve_augment
from visiontrain.training.loop import check_batch


@pytest.mark.slow
@pytest.mark.parametrize("flags_, message", [
    (("--data_dir=/nonexistent/shards",), "--data_dir=/nonexistent/shards is not a directory"),
    (("--augment=flip", "--augment_preset=light"), "are mutually exclusive"),
])
def test_bad_invocation_exits_2_with_one_line(digits, tmp_path, flags_, message):
    result = run_train(digits, str(tmp_path / "run"), "--epochs=1", *flags_, timeout=120)
    assert result.returncode == 2, result.stdout[-2000:]
    assert len([line for line in result.stdout.splitlines() if message in line]) == 1
    assert "Traceback" not in result.stdout


def test_unknown_model_lists_the_known_ones():
    assert check_model_name("small_cnn")
    with pytest.raises(flags.ValidationError, match="resnet9000.*known models: .*small_cnn"):
        check_model_name("resnet9000")


def test_batch_must_split_over_the_replicas():
    check_batch(64, types.SimpleNamespace(num_replicas_in_sync=2))
    with pytest.raises(ValueError, match="--global_batch_size=64 is not divisible by the 3 "
                                         "replicas; use a multiple of 3"):
        check_batch(64, types.SimpleNamespace(num_replicas_in_sync=3))


@pytest.mark.parametrize("spec, preset, message", [
    ("bogus:1", None, "--augment='bogus:1': Unknown augmentation op 'bogus'"),
    ("flip", "light", "are mutually exclusive"),
])
def test_bad_augment_flags(spec, preset, message):
    with pytest.raises(ValueError, match=message):
        resolve_augment(spec, preset)


def test_importing_the_engine_leaves_tf_devices_uninitialised():
    """The tools split the CPU after importing the library; a module-level tensor breaks that."""
    import subprocess
    import sys

    code = (
        "import visiontrain.training.loop, visiontrain.flags.definitions, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "split = [tf.config.LogicalDeviceConfiguration()] * 2\n"
        "tf.config.set_logical_device_configuration(cpu, split)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
