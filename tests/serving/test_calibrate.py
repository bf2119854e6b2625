"""--calibrate on an overconfident run: ECE falls, accuracy holds, T reaches every output."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.runs import digit_arrays, fit_and_save_run
from tests.helpers.shards import write_dataset
from visiontrain import calibration
from visiontrain.config import DataConfig, ExportConfig
from visiontrain.pipelines import record_sources
from visiontrain.serving import export
from visiontrain.training import rundir

pytestmark = pytest.mark.slow
FEW = 60  # training images: memorised long before training ends


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, digits):
    root = tmp_path_factory.mktemp("calibrate")
    data = DataConfig(data_dir=digits, image_size=8, eval_crop_fraction=1.0)
    run_dir = str(root / "run")
    images, labels = digit_arrays()
    # Memorised long before training ends: sure of itself, wrong on many.
    fit_and_save_run(run_dir, data, images[:FEW], labels[:FEW], [str(i) for i in range(10)],
                     steps=300)
    config = ExportConfig(run_dir=run_dir, export_dir=str(root / "models" / "digits"),
                          calibrate=True, tflite="float16", onnx=True)
    return config, export.export_run(config, rundir.load_run(run_dir))


def test_temperature_softens_an_overconfident_run_and_keeps_accuracy(calibrated):
    _, path = calibrated
    meta = json.load(open(os.path.join(path, export.METADATA)))
    fitted = meta["calibration"]
    assert meta["temperature"] == fitted["temperature"] > 1.0
    assert fitted["images"] == 297
    assert fitted["after"]["ece"] < fitted["before"]["ece"]
    assert fitted["after"]["nll"] < fitted["before"]["nll"]
    assert fitted["after"]["accuracy"] == fitted["before"]["accuracy"]
    report = json.load(open(os.path.join(path, export.REPORT)))
    assert report["calibration"] == fitted


def test_every_signature_serves_the_calibrated_probabilities(calibrated, digits):
    _, path = calibrated
    meta = json.load(open(os.path.join(path, export.METADATA)))
    serve = tf.saved_model.load(path).signatures["serving_default"]
    probabilities, labels = [], []
    for encoded, label in record_sources.encoded_records(digits, "validation", 128):
        probabilities.append(serve(image_bytes=encoded)["probabilities"].numpy())
        labels.append(label.numpy())
    served = calibration.scores(np.concatenate(probabilities), np.concatenate(labels))
    assert served["ece"] == pytest.approx(meta["calibration"]["after"]["ece"], abs=1e-4)
    assert served["nll"] == pytest.approx(meta["calibration"]["after"]["nll"], rel=1e-4)
    # The TF-only reload check covered all three signatures; the TFLite model has T too.
    report = json.load(open(os.path.join(path, export.REPORT)))
    assert report["tflite"]["max_abs_probability_diff"] < 1e-2
    assert report["tflite"]["top1_agreement_with_saved_model"] == 1.0
    assert report["onnx"]["max_abs_probability_diff"] <= report["onnx"]["tolerance"]
    assert report["onnx"]["top1_agreement_with_saved_model"] == 1.0
    assert os.path.exists(os.path.join(path, report["onnx"]["file"]))


def test_a_validation_split_too_small_to_fit_fails_before_writing(calibrated, tmp_path):
    config, _ = calibrated
    rng = np.random.default_rng(0)
    small = (rng.integers(0, 256, (10, 8, 8, 3), np.uint8), np.arange(10) % 10)
    write_dataset(str(tmp_path / "small"), small, small, [str(i) for i in range(10)])
    run = rundir.load_run(config.run_dir)
    data = DataConfig(data_dir=str(tmp_path / "small"), image_size=8, eval_crop_fraction=1.0)
    target = str(tmp_path / "models")
    with pytest.raises(ValueError, match="at least 50 validation images; the validation split "
                       "has 10. Add validation images or drop --calibrate"):
        export.export_run(ExportConfig(run_dir=config.run_dir, export_dir=target, calibrate=True),
                          dataclasses.replace(run, data=data))
    assert not os.path.exists(target)
