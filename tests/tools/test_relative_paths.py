"""Every tool with relative paths, and a later tool run from another working directory.

data build -> train -> (from a sibling directory) evaluate, export, predict, and a second
training that starts from the first run's directory (--pretrained=RUN_DIR).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.helpers.runs import REPO

pytestmark = pytest.mark.slow
TRAIN = ("--model=small_cnn", "--image_size=16", "--global_batch_size=8", "--epochs=1",
         "--eval_crop_fraction=1.0", "--shuffle_buffer=64")


def tool(name, *args, cwd):
    env = {**os.environ, "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-m", f"visiontrain.tools.{name}", *args],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"visiontrain-{name}: {result.stdout}{result.stderr}"
    return result


def write_images(root):
    rng = np.random.default_rng(0)
    for c, name in enumerate(("dark", "light")):
        os.makedirs(root / name)
        for i in range(16):
            pixels = rng.integers(0, 60, (20, 20, 3)) + 180 * c
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")


def test_every_tool_takes_relative_paths_from_any_directory(tmp_path):
    work, other = tmp_path / "work", tmp_path / "other"
    other.mkdir()
    write_images(work / "images")
    tool("data", "build", "--source=images", "--output=shards", "--num_shards=2", cwd=work)
    tool("train", "--data_dir=shards", "--run_dir=run", *TRAIN, cwd=work)
    config = json.loads((work / "run" / "config.json").read_text())
    assert config["data"]["data_dir"] == str(work / "shards")
    assert config["train"]["run_dir"] == str(work / "run")
    assert f"--data_dir={work / 'shards'}" in (work / "run" / "flags.txt").read_text()

    report = other / "report.json"
    tool("evaluate", "--run_dir=../work/run", "--output=report.json", cwd=other)
    written = json.loads(report.read_text())
    assert written["data_dir"] == str(work / "shards") and written["source"] == str(work / "run")
    exported = tool("export", "--run_dir=../work/run", "--export_dir=models/shades", cwd=other)
    assert (other / "models" / "shades" / "1" / "saved_model.pb").exists(), exported.stdout
    predicted = tool("predict", "--saved_model=models/shades/1", "--json",
                     "../work/images/light/0.png", cwd=other)
    (answer,) = json.loads(predicted.stdout)
    assert answer["file"] == "../work/images/light/0.png"
    assert {t["label"] for t in answer["top_k"]} == {"dark", "light"}

    tuned = tool("train", "--data_dir=../work/shards", "--run_dir=run2",
                 "--pretrained=../work/run", *TRAIN, cwd=other)
    best = work / "run" / "best.weights.h5"
    assert f"loading its best weights, {best}" in tuned.stderr
    assert json.loads((other / "run2" / "config.json").read_text())["model"]["pretrained"] \
        == str(work / "run")
