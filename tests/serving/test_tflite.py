"""TFLite: converted by TF, verified in LiteRT's interpreter, refused at once without it."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.runs import run_without_model
from visiontrain.config import ExportConfig, ModelConfig
from visiontrain.errors import UserError
from visiontrain.models.registry import build_model
from visiontrain.serving import export, tflite

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="the [litert] extra")


@pytest.fixture(scope="module")
def model_and_images():
    tf.keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(name="small_cnn", num_classes=3), 16)
    rng = np.random.default_rng(0)
    return model, rng.integers(0, 256, (6, 16, 16, 3), np.uint8)


def _keras_probabilities(model, images, temperature=1.0):
    logits = model(tf.cast(images, tf.float32), training=False)
    return tf.nn.softmax(tf.cast(logits, tf.float32) / temperature).numpy()


def test_int8_conversion_freezes_every_variable(model_and_images):
    """Guards serving/frozen.py's private convert_variables_to_constants_v2 import: without
    the freeze, int8 calibration fails on READ_VARIABLE ops; if TF moves it, imports fail."""
    model, images = model_and_images
    flatbuffer = tflite.convert(model, 16, "int8", images)
    interpreter = litert.Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "READ_VARIABLE" not in ops and "VAR_HANDLE" not in ops
    assert tflite.predict(flatbuffer, images).shape == (6, 3)


@pytest.mark.parametrize("mode,tolerance", [("float32", 1e-5), ("float16", 1e-2)])
def test_litert_agrees_with_keras_with_a_temperature(model_and_images, mode, tolerance):
    model, images = model_and_images
    flatbuffer = tflite.convert(model, 16, mode, temperature=2.5)
    lite = tflite.predict(flatbuffer, images)
    np.testing.assert_allclose(lite, _keras_probabilities(model, images, 2.5), atol=tolerance)


def test_without_litert_the_flag_fails_at_once_with_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setattr(tflite, "Interpreter", None)
    config = ExportConfig(run_dir=str(tmp_path / "run"), export_dir=str(tmp_path / "models"),
                          tflite="float16")
    with pytest.raises(UserError, match=r"pip install 'visiontrain\[litert\]'"):
        # No model is needed: the check comes before anything is built or read.
        export.export_run(config, run_without_model(str(tmp_path), ["a"]))
    assert not (tmp_path / "models").exists()
