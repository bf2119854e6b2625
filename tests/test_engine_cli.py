"""Bad `visiontrain-train` invocations: non-zero exit, one clear line, no traceback."""

from __future__ import annotations

import pytest
from engine_runs import run_train, write_digits


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digits(str(tmp_path_factory.mktemp("digits")))


@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    (("--data_dir=/nonexistent/shards",), "--data_dir=/nonexistent/shards is not a directory"),
    (("--model=resnet9000",), "resnet9000"),
    (("--cpu_replicas=0",), "cpu_replicas"),
    (("--cpu_replicas=3",), "--global_batch_size=64 is not divisible by the 3 replicas"),
    (("--augment=bogus:1",), "--augment='bogus:1': Unknown augmentation op 'bogus'"),
    (("--augment=flip", "--augment_preset=light"), "are mutually exclusive"),
])
def test_bad_invocation_exits_with_one_line(digits, tmp_path, flags, message):
    result = run_train(digits, str(tmp_path / "run"), "--epochs=1", *flags, timeout=120)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-2000:]
    assert len([line for line in result.stdout.splitlines() if message in line]) == 1
    if "augment" in flags[0]:
        assert result.returncode == 2
    assert "Traceback" not in result.stdout
