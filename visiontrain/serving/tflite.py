"""TFLite conversion of an exported model, for on-device inference.

The TFLite model takes ONE preprocessed image, uint8 [1, S, S, 3] (the output of
`preprocess_for_eval`: centre crop + resize, no normalisation) and returns
probabilities float32 [1, C]. Decoding and cropping stay with the app, because
TFLite has no image decoders; normalisation is inside the model.

Conversion is TF's `TFLiteConverter`; verification runs the flatbuffer in LiteRT's
interpreter (`ai_edge_litert`, the optional [litert] extra), the runtime apps ship,
since `tf.lite.Interpreter` is deprecated.

    float32: plain conversion.
    float16: float16 weights (half the size), float32 compute on CPU.
    int8:    weights and activations quantized, calibrated on a representative
             sample of training images; float kept where an op has no int8 kernel.
"""

from __future__ import annotations

from typing import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from visiontrain.errors import UserError
from visiontrain.serving.frozen import frozen_classifier

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # the [litert] extra is optional; require_litert says how to add it
    Interpreter = None

MODES = ("float32", "float16", "int8")
PIP_LITERT = "pip install 'visiontrain[litert]'"


def require_litert() -> None:
    """Raises UserError at once when LiteRT, which checks a TFLite export, is missing."""
    if Interpreter is None:
        raise UserError(f"--tflite is verified with LiteRT's interpreter (ai_edge_litert), "
                        f"which is not installed: {PIP_LITERT}")


def _configure(mode: str, converter, representative: Callable[[], Iterable] | None) -> None:
    if mode == "float32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        if representative is None:
            raise ValueError("--tflite=int8 needs representative images to calibrate on.")
        converter.representative_dataset = representative


def convert(
    model: keras.Model,
    image_size: int,
    mode: str,
    representative_images: np.ndarray | None = None,
    temperature: float = 1.0,
) -> bytes:
    """The model as a TFLite flatbuffer.

    Args:
      model: the Keras classifier (float inputs 0..255, logits out).
      image_size: S of the uint8 [1, S, S, 3] input.
      mode: one of MODES.
      representative_images: uint8 [N, S, S, 3] calibration images (int8 only).
      temperature: the SavedModel's (--calibrate), so both return the same probabilities.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown TFLite mode {mode!r}; known: {', '.join(MODES)}.")

    representative = None
    if representative_images is not None:
        def representative():
            for image in representative_images:
                yield [image[None]]

    # Frozen first: converting with live Keras variables leaves READ_VARIABLE ops,
    # which int8 calibration cannot run.
    frozen = frozen_classifier(model, image_size, 1, temperature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    _configure(mode, converter, representative)
    return converter.convert()


def predict(flatbuffer: bytes, images: np.ndarray) -> np.ndarray:
    """Probabilities [N, C] of uint8 images [N, S, S, 3], one LiteRT call each."""
    require_litert()
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    rows = []
    for image in images:
        interpreter.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"])[0])
    return np.stack(rows)
