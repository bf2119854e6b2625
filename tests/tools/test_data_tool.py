"""visiontrain-data as users run it: subcommands and bad invocations, via subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def run_tool(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "visiontrain.tools.data", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def make_classes(root, names, per_class=3):
    for c, name in enumerate(names):
        os.makedirs(root / name)
        for i in range(per_class):
            pixels = np.full((8, 8, 3), 40 * c + i, np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


BAD = {
    "missing_source": (["build", "--source=nowhere", "--output=out"], "nowhere is not a directory"),
    "one_class": (["build", "--source=one", "--output=out"], "at least 2"),
    "empty_class": (["build", "--source=holey", "--output=out"], "empty is empty"),
    "output_inside_source": (["build", "--source=good", "--output=good/out"], "inside --source"),
    "unknown_tfds": (["build", "--source=tfds:no_such_ds", "--output=out"], "no_such_ds"),
    "bad_quality": (["build", "--source=good", "--output=out", "--jpeg_quality=0"],
                    "jpeg_quality"),
    "no_manifest": (["verify", "good"], "no manifest.json"),
    "unknown_command": (["frobnicate"], "verify DIR"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_invocations_exit_nonzero_with_a_message(tmp_path, name):
    make_classes(tmp_path / "good", ["a", "b"])
    make_classes(tmp_path / "one", ["a"])
    make_classes(tmp_path / "holey", ["a", "b"])
    os.makedirs(tmp_path / "holey" / "empty")
    args, message = BAD[name]
    result = run_tool(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.slow
def test_a_class_without_training_images_exits_2_with_one_line_unless_allowed(tmp_path):
    make_classes(tmp_path / "src" / "train", ["a", "b"])
    make_classes(tmp_path / "src" / "val", ["a", "b", "zebra"])
    refused = run_tool("build", "--source=src", "--output=out", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("visiontrain-data: error: 1 class(es) of --source=")
    assert "zebra (3 validation image(s))" in last and "--allow_untrained_classes" in last
    assert not (tmp_path / "out").exists()
    allowed = run_tool("build", "--source=src", "--output=out", "--allow_untrained_classes",
                       cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.slow
def test_build_verify_inspect_round_trip(tmp_path):
    make_classes(tmp_path / "src", ["a", "b"], per_class=5)
    built = run_tool("build", "--source=src", "--output=out", "--num_shards=2", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    verified = run_tool("verify", "out", cwd=tmp_path)
    assert verified.returncode == 0 and "OK" in verified.stdout, verified.stderr
    inspected = run_tool("inspect", "out", "--samples_per_class=3", cwd=tmp_path)
    assert inspected.returncode == 0, inspected.stderr
    assert inspected.stdout.split("\n")[1].split() == ["a", "4", "1"]
    grid = Image.open(tmp_path / "out" / "inspect_grid.png")
    # Two rows of three 64 px samples (2 px gaps around), each row named on its left.
    pixels = np.asarray(grid)
    left = grid.size[0] - (3 * 66 + 2)
    assert grid.size[1] == 2 * 66 + 2 and left > 0 and grid.mode == "RGB"
    for row in range(2):
        assert (pixels[2 + row * 66:row * 66 + 66, :left] < 128).any(), f"row {row} unnamed"
    shard = tmp_path / "out" / "train-00001-of-00002.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-5])
    broken = run_tool("verify", "out", cwd=tmp_path)
    assert broken.returncode != 0 and "train-00001-of-00002.tfrecord" in broken.stderr


@pytest.mark.slow
def test_a_second_build_into_the_same_output_is_refused_while_the_first_runs(tmp_path):
    from visiontrain.training.runlock import RunLock

    make_classes(tmp_path / "src", ["a", "b"])
    with RunLock(str(tmp_path / "out"), "manifest.json", flag="--output", job="build"):
        refused = run_tool("build", "--source=src", "--output=out", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert f"--output={tmp_path}/out is in use by PID {os.getpid()}" in refused.stderr
    assert "wait for that build to end" in refused.stderr
    built = run_tool("build", "--source=src", "--output=out", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "out" / "manifest.json").exists()
