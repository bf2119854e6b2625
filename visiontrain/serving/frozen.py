"""The network alone, frozen: preprocessed uint8 images in, probabilities out.

The graph both TFLite and ONNX are converted from. Input: uint8 [batch, S, S, 3], the
output of `preprocess_for_eval` (centre crop + resize, values 0..255, no normalisation;
the model normalises itself). Output: probabilities float32 [batch, C], softmax(logits / T).
"""

from __future__ import annotations

import keras
import tensorflow as tf

# Private, but the only way found to freeze Keras 3 variables: from_saved_model and
# from_concrete_functions(trackable_obj=...) both keep READ_VARIABLE ops that TFLite's
# int8 calibrator cannot run, and tf2onnx on the live function turns the input-scaling
# variables into extra graph inputs. tests/serving/test_tflite.py guards it.
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

INPUT = "images"
OUTPUT = "probabilities"


def frozen_classifier(
    model: keras.Model, image_size: int, batch: int | None, temperature: float = 1.0
):
    """A ConcreteFunction with the model's variables folded into constants."""
    @tf.function(input_signature=[
        tf.TensorSpec([batch, image_size, image_size, 3], tf.uint8, name=INPUT)])
    def classify(images):
        logits = model(tf.cast(images, tf.float32), training=False)
        return {OUTPUT: tf.nn.softmax(tf.cast(logits, tf.float32) / temperature)}

    return convert_variables_to_constants_v2(classify.get_concrete_function())
