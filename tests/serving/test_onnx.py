"""ONNX: the frozen network in onnxruntime matches Keras; a mismatch or no extra fails."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.runs import run_without_model
from visiontrain.config import ExportConfig, ModelConfig
from visiontrain.errors import UserError
from visiontrain.models.registry import build_model
from visiontrain.serving import export, onnx_export

ort = pytest.importorskip("onnxruntime", reason="the [onnx] extra")


@pytest.fixture(scope="module")
def converted():
    tf.keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(name="small_cnn", num_classes=3), 16)
    return model, onnx_export.convert(model, 16, temperature=2.5)


def test_onnx_takes_preprocessed_uint8_batches_and_matches_keras(converted):
    model, serialized = converted
    session = ort.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("images", "tensor(uint8)", [16, 16, 3])
    assert out.name == "probabilities"
    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), np.uint8)
    keras_probabilities = tf.nn.softmax(
        model(tf.cast(images, tf.float32), training=False) / 2.5).numpy()
    got = onnx_export.predict(serialized, images)
    record = onnx_export.parity(got, keras_probabilities)
    assert record["max_abs_probability_diff"] <= onnx_export.TOLERANCE
    assert record["top1_agreement_with_saved_model"] == 1.0


def test_a_mismatch_fails_the_export():
    served = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], np.float32)
    with pytest.raises(RuntimeError, match="disagrees with the SavedModel"):
        onnx_export.parity(served + np.float32(1e-3), served)
    with pytest.raises(RuntimeError, match="top1_agreement_with_saved_model': 0.5"):
        onnx_export.parity(served[[0, 0]], served)  # row 2 now predicts class 0


def test_without_the_extra_the_flag_fails_at_once_with_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setattr(onnx_export, "onnxruntime", None)
    config = ExportConfig(run_dir=str(tmp_path / "run"), export_dir=str(tmp_path / "models"),
                          onnx=True)
    with pytest.raises(UserError, match=r"pip install 'visiontrain\[onnx\]'"):
        export.export_run(config, run_without_model(str(tmp_path), ["a"]))
    assert not (tmp_path / "models").exists()
