"""`visiontrain-train` features end to end: augmentation, dtypes, XLA, TFDS, TensorBoard.

Two runs cover them all: strong augmentation + float16 (loss scaling) + EMA + profiling
on the digit shards, and XLA + bfloat16 on a TFDS dataset read directly.
"""

from __future__ import annotations

import glob
import json
import math
import os

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorboard.backend.event_processing import event_accumulator

from tests.helpers.runs import run_train
from tests.helpers.tfds_builders import TinyShapes
from visiontrain.augment.policy import PRESETS

pytestmark = pytest.mark.slow


def events(logdir: str) -> event_accumulator.EventAccumulator:
    acc = event_accumulator.EventAccumulator(
        logdir, size_guidance={event_accumulator.IMAGES: 0, event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    return acc


def train_losses(run_dir: str) -> list[float]:
    """Every training-loss scalar the run logged."""
    return [float(tf.make_ndarray(event.tensor_proto))
            for event in events(os.path.join(run_dir, "train")).Tensors("loss")]


def assert_trained(result, run_dir: str, steps: int) -> dict:
    assert result.returncode == 0, result.stdout[-3000:]
    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert results["step"] == steps
    assert math.isfinite(results["validation"]["loss"])
    losses = train_losses(run_dir)
    assert losses and all(math.isfinite(loss) for loss in losses)
    return json.load(open(os.path.join(run_dir, "config.json")))


@pytest.fixture(scope="module")
def strong_run(digits, tmp_path_factory):
    """MixUp/CutMix make soft targets; float16 needs the loss-scale path."""
    run_dir = str(tmp_path_factory.mktemp("strong"))
    result = run_train(digits, run_dir, "--epochs=1", "--augment_preset=strong",
                       "--dtype=mixed_float16", "--ema_decay=0.9", "--profile_steps=2,6",
                       "--steps_per_loop=2")
    return result, run_dir


def test_strong_augment_float16_trains_to_a_finite_loss(strong_run):
    result, run_dir = strong_run
    config = assert_trained(result, run_dir, 23)
    assert config["train"]["augment"] == PRESETS["strong"]
    assert config["train"]["dtype"] == "mixed_float16"


def test_tensorboard_logs(strong_run):
    result, run_dir = strong_run
    assert result.returncode == 0, result.stdout[-3000:]
    train = events(os.path.join(run_dir, "train"))
    assert {"loss", "accuracy", "learning_rate", "images_per_second", "step_time_ms",
            "augmented_samples"} <= set(train.Tags()["tensors"])
    (grid,) = train.Tensors("augmented_samples")
    width, height, png = tf.make_ndarray(grid.tensor_proto)
    # 16 images of 8 px tile 4x4 with 2 px padding.
    assert tf.io.decode_png(png).shape == (int(height), int(width), 3) == (42, 42, 3)
    validation = events(os.path.join(run_dir, "validation"))
    assert {"loss", "accuracy", "top5", "accuracy_ema", "confusion_matrix",
            "confusion_matrix_ema"} <= set(validation.Tags()["tensors"])
    (confusion,) = validation.Tensors("confusion_matrix")
    assert confusion.step == 23
    hparams = events(run_dir)
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(
        hparams.PluginTagToContent("hparams"))
    (accuracy,) = hparams.Tensors("validation/accuracy")
    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert float(tf.make_ndarray(accuracy.tensor_proto)) == pytest.approx(
        results["validation"]["accuracy"])
    assert glob.glob(os.path.join(run_dir, "train", "plugins", "profile", "*", "*.xplane.pb"))


def test_tfds_dataset_trains_directly_with_xla_and_bfloat16(tmp_path):
    tfds_dir = str(tmp_path / "tfds")
    TinyShapes(data_dir=tfds_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(num_shards=3)
    )
    run_dir = str(tmp_path / "run")
    # XLA has no deterministic MaxPool gradient: op determinism off for XLA.
    result = run_train("tfds:tiny_shapes", run_dir, "--epochs=2", "--global_batch_size=4",
                       "--image_size=8", f"--tfds_data_dir={tfds_dir}", "--shuffle_buffer=8",
                       "--augment=flip,jitter:0.4", "--dtype=mixed_bfloat16", "--jit_compile",
                       "--nodeterministic")
    config = assert_trained(result, run_dir, 10)
    assert config["labels"] == ["x", "y", "z"]
    assert config["train"]["augment"] == "flip,jitter:0.4"
    assert config["train"]["dtype"] == "mixed_bfloat16" and config["train"]["jit_compile"]
    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert results["validation"]["examples"] == 5
