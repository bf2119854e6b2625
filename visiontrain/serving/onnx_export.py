"""ONNX export of the network, checked in onnxruntime against the SavedModel.

The ONNX model is the frozen network of `serving.frozen`: uint8 images [N, S, S, 3]
already through `preprocess_for_eval` (decode, centre crop of eval_crop_fraction,
bilinear resize to S; values 0..255, NOT normalised) in, probabilities float32 [N, C]
(the export's temperature included) out. Decoding stays with the SavedModel.

Converter: tf2onnx on the frozen concrete function. Keras' own `model.export(...,
format="onnx")` (Keras 3.15.1 with tf2onnx 1.17) leaves the input-scaling constants as
extra graph inputs, so it cannot run on images alone; freezing first makes it exact.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from visiontrain.errors import UserError
from visiontrain.serving.frozen import INPUT, OUTPUT, frozen_classifier

try:
    import onnxruntime
    import tf2onnx
except ImportError:  # the [onnx] extra is optional; require_onnx says how to add it
    onnxruntime = tf2onnx = None

OPSET = 17
# float32 kernels differ between TF and onnxruntime; beyond this the export fails.
TOLERANCE = 1e-4
PIP_ONNX = "pip install 'visiontrain[onnx]'"


def require_onnx() -> None:
    """Raises UserError at once when tf2onnx or onnxruntime is missing."""
    if onnxruntime is None:
        raise UserError(f"--onnx needs tf2onnx and onnxruntime, which are not installed: "
                        f"{PIP_ONNX}")


def _rename(model_proto, old: str, new: str) -> None:
    """Renames a graph tensor everywhere it appears (tf2onnx keeps TF's "name:0")."""
    graph = model_proto.graph
    for value in list(graph.input) + list(graph.output):
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


def convert(model: keras.Model, image_size: int, temperature: float = 1.0) -> bytes:
    """The serialized ONNX model, input "images" and output "probabilities"."""
    require_onnx()
    frozen = frozen_classifier(model, image_size, None, temperature)
    (output,) = frozen.outputs
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(), input_names=[frozen.inputs[0].name],
        output_names=[output.name], opset=OPSET)
    _rename(proto, frozen.inputs[0].name, INPUT)
    _rename(proto, output.name, OUTPUT)
    return proto.SerializeToString()


def predict(serialized: bytes, images: np.ndarray) -> np.ndarray:
    """Probabilities [N, C] of preprocessed uint8 images [N, S, S, 3], in onnxruntime."""
    require_onnx()
    session = onnxruntime.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run([OUTPUT], {INPUT: images.astype(np.uint8)})
    return probabilities


def parity(onnx_probabilities: np.ndarray, served: np.ndarray) -> dict[str, Any]:
    """Max abs difference and top-1 agreement with the SavedModel.

    Raises:
      RuntimeError: the two disagree beyond TOLERANCE or on any top-1.
    """
    record = {
        "max_abs_probability_diff": float(np.max(np.abs(onnx_probabilities - served))),
        "top1_agreement_with_saved_model": float(
            np.mean(onnx_probabilities.argmax(-1) == served.argmax(-1))),
        "tolerance": TOLERANCE,
        "images": int(len(served)),
    }
    if (record["max_abs_probability_diff"] > TOLERANCE
            or record["top1_agreement_with_saved_model"] < 1.0):
        raise RuntimeError(f"The ONNX model disagrees with the SavedModel: {record}")
    return record
