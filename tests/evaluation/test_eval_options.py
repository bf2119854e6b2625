"""visiontrain-evaluate --eval_tta / --eval_image_size / --eval_crop_fraction, and what an
export records of the preprocessing it bakes in."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.runs import env
from visiontrain.evaluation.predictors import with_tta
from visiontrain.pipelines.preprocess import decode_rgb


def left_right_predictor(encoded):
    """Probabilities [left half brighter, right half brighter] of each image."""
    images = tf.map_fn(lambda e: tf.cast(decode_rgb(e), tf.float32), encoded,
                       fn_output_signature=tf.float32)
    left = tf.reduce_mean(images[:, :, :2], axis=[1, 2, 3])
    right = tf.reduce_mean(images[:, :, 2:], axis=[1, 2, 3])
    return tf.nn.softmax(tf.stack([left, right], axis=1) / 50.0)


def test_flip_tta_averages_an_image_and_its_mirror():
    image = np.zeros((4, 4, 3), np.uint8)
    image[:, :2] = 200  # left half bright
    encoded = tf.stack([tf.io.encode_png(image), tf.io.encode_jpeg(image, quality=100)])
    plain = left_right_predictor(encoded).numpy()
    assert (plain[:, 0] > 0.9).all()
    # The mirror puts the bright half on the right: the mean is even.
    np.testing.assert_allclose(with_tta(left_right_predictor, "flip")(encoded).numpy(), 0.5,
                               atol=1e-6)
    assert with_tta(left_right_predictor, "none") is left_right_predictor
    with pytest.raises(ValueError, match="Unknown --eval_tta='five_crop'"):
        with_tta(left_right_predictor, "five_crop")


def tool(name, *flags):
    return subprocess.run([sys.executable, "-m", f"visiontrain.tools.{name}", *flags],
                          env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300)


@pytest.mark.slow
def test_evaluate_at_another_size_with_tta_and_export_records_its_preprocessing(
        digits, tiny_run, tmp_path):
    run_dir, _ = tiny_run
    output = str(tmp_path / "eval" / "report.json")
    evaluated = tool("evaluate", f"--run_dir={run_dir}", f"--output={output}",
                     f"--logdir={tmp_path / 'eval'}", "--eval_image_size=12",
                     "--eval_crop_fraction=0.9", "--eval_tta=flip")
    assert evaluated.returncode == 0, evaluated.stdout[-3000:]
    report = json.load(open(output))
    assert report["image_size"] == 12 and report["tta"] == "flip"
    assert report["examples"] == 297 and 0.0 <= report["accuracy"] <= 1.0

    export_dir = str(tmp_path / "export")
    exported = tool("export", f"--run_dir={run_dir}", f"--export_dir={export_dir}",
                    "--eval_image_size=12", "--eval_crop_fraction=0.9")
    assert exported.returncode == 0, exported.stdout[-3000:]
    meta = json.load(open(os.path.join(export_dir, "1", "assets.extra", "visiontrain.json")))
    assert meta["image_size"] == 12 and meta["train_image_size"] == 8
    assert meta["eval_crop_fraction"] == 0.9
    assert meta["preprocessing"].startswith(
        "decode to RGB, centre crop 0.9 of the shorter side, bilinear resize to 12x12")

    refused = tool("evaluate", f"--saved_model={export_dir}/1", f"--data_dir={digits}",
                   "--eval_image_size=16")
    assert refused.returncode == 2 and "has its input size and crop baked in" in refused.stdout
