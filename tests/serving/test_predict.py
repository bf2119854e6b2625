"""visiontrain-predict on a mix of good and bad files, and on a directory."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import pytest

from tests.helpers.images import mode_files
from visiontrain.config import ModelConfig
from visiontrain.models.registry import build_model
from visiontrain.serving import predict, signatures


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export") / "1")
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(name="small_cnn", num_classes=2), 16)
    archive, _ = signatures.build_archive(model, ["a", "b"], 16, 1.0, 2, 10**6)
    archive.write_out(path, verbose=False)
    return path


def inputs(root) -> list[str]:
    files = mode_files()
    (root / "photos" / "sub").mkdir(parents=True)
    (root / "photos" / "one.png").write_bytes(files["rgba.png"])
    (root / "photos" / "sub" / "two.jpg").write_bytes(files["rgb.jpg"])
    (root / "photos" / ".hidden.png").write_bytes(b"junk")
    (root / "cut.jpg").write_bytes(files["rgb.jpg"][:300])
    (root / "notes.txt").write_text("not an image")
    (root / "good.gif").write_bytes(files["palette_transparent.gif"])
    return ["good.gif", "cut.jpg", "photos", "missing.png", "notes.txt"]


def test_every_readable_file_is_answered_and_each_bad_one_named(tmp_path, saved_model,
                                                               monkeypatch):
    args = inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    predictions, failures = predict.predict_files(saved_model, args)
    assert [p["file"] for p in predictions] == [
        "good.gif", os.path.join("photos", "one.png"), os.path.join("photos", "sub", "two.jpg")]
    assert all(len(p["top_k"]) == 2 for p in predictions)
    errors = {f["file"]: f["error"] for f in failures}
    assert list(errors) == ["cut.jpg", "missing.png", "notes.txt"]
    assert "truncated" in errors["cut.jpg"] and "no such file" in errors["missing.png"]
    assert "not JPEG, PNG, GIF, BMP or WebP" in errors["notes.txt"]


def test_tool_exit_code_and_stderr(tmp_path, saved_model):
    args = inputs(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-m", "visiontrain.tools.predict",
                          f"--saved_model={saved_model}", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert len(run.stdout.splitlines()) == 3 and "good.gif" in run.stdout
    errors = [line for line in run.stderr.splitlines() if "visiontrain-predict: error:" in line]
    assert len(errors) == 3 and "Traceback" not in run.stderr
    ok = subprocess.run([sys.executable, "-m", "visiontrain.tools.predict",
                         f"--saved_model={saved_model}", "photos"], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and len(ok.stdout.splitlines()) == 2
