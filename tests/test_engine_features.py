"""`visiontrain-train` features end to end: augmentation, TFDS input, dtypes, XLA."""

from __future__ import annotations

import glob
import json
import math
import os

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from engine_runs import run_train, write_digits
from test_tfds_reader import TinyShapes

from visiontrain.pipelines.augment import PRESETS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digits(str(tmp_path_factory.mktemp("digits")))


def train_losses(run_dir: str) -> list[float]:
    """Every training-loss scalar the run logged."""
    losses = []
    for path in glob.glob(os.path.join(run_dir, "train", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "loss":
                    losses.append(float(tf.make_ndarray(value.tensor)))
    return losses


def assert_trained(result, run_dir: str, steps: int) -> dict:
    assert result.returncode == 0, result.stdout[-3000:]
    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert results["step"] == steps
    assert math.isfinite(results["validation"]["loss"])
    losses = train_losses(run_dir)
    assert losses and all(math.isfinite(loss) for loss in losses)
    return json.load(open(os.path.join(run_dir, "config.json")))


@pytest.mark.parametrize("flags", [
    # MixUp/CutMix make soft targets; float16 needs the loss-scale path.
    ("--augment_preset=strong", "--dtype=mixed_float16"),
    # XLA has no deterministic MaxPool gradient: op determinism off for XLA.
    ("--augment=flip,jitter:0.4", "--dtype=mixed_bfloat16", "--jit_compile",
     "--nodeterministic"),
])
def test_augmented_mixed_precision_runs_train_to_a_finite_loss(digits, tmp_path, flags):
    run_dir = str(tmp_path / "run")
    config = assert_trained(run_train(digits, run_dir, "--epochs=1", *flags), run_dir, 23)
    spec = flags[0].split("=", 1)[1]
    assert config["train"]["augment"] == PRESETS.get(spec, spec)
    assert config["train"]["dtype"] == flags[1].split("=", 1)[1]


def test_tfds_dataset_trains_directly(tmp_path):
    tfds_dir = str(tmp_path / "tfds")
    TinyShapes(data_dir=tfds_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(num_shards=3)
    )
    run_dir = str(tmp_path / "run")
    result = run_train("tfds:tiny_shapes", run_dir, "--epochs=2", "--global_batch_size=4",
                       "--image_size=8", f"--tfds_data_dir={tfds_dir}", "--shuffle_buffer=8")
    config = assert_trained(result, run_dir, 10)
    assert config["labels"] == ["x", "y", "z"]
    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert results["validation"]["examples"] == 5
