"""What `--calibrate` learns from the validation split before an export is built.

One temperature T (Guo et al., 2017) is fitted to the whole validation split by
minimising NLL; every signature then returns softmax(logits / T). Dividing by T > 0
keeps the argmax, so accuracy is unchanged; the record keeps the scores before and
after so a reader sees what it bought.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from visiontrain import calibration
from visiontrain.config import DataConfig
from visiontrain.pipelines import datasets, preprocess

BATCH_SIZE = 64


def split_logits(
    model: keras.Model, data: DataConfig, split: str = "validation"
) -> tuple[np.ndarray, np.ndarray]:
    """float64 logits [N, C] and int labels [N] of every image of a split.

    The images go through the shared evaluation preprocessing, as in the signatures.
    """
    image_spec = tf.TensorSpec([data.image_size, data.image_size, 3], tf.uint8)

    @tf.function
    def logits_of(encoded):
        images = tf.map_fn(
            lambda e: preprocess.preprocess_for_eval(e, data.image_size, data.eval_crop_fraction),
            encoded, fn_output_signature=image_spec)
        return tf.cast(model(tf.cast(images, tf.float32), training=False), tf.float32)

    logits, labels = [], []
    for encoded, label in datasets.encoded_records(data.data_dir, split, BATCH_SIZE):
        logits.append(logits_of(encoded).numpy())
        labels.append(label.numpy())
    if not logits:
        return np.zeros((0, model.output_shape[-1])), np.zeros((0,), np.int64)
    return np.concatenate(logits).astype(np.float64), np.concatenate(labels)


def fit(logits: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, Any]]:
    """The NLL-minimising temperature and the record of what it changed.

    Raises:
      ValueError: too few validation images to fit on (the message says how many).
    """
    temperature = calibration.fit_temperature(logits, labels)
    return temperature, {
        "temperature": temperature,
        "method": "temperature scaling, NLL minimised on the validation split",
        "images": int(len(labels)),
        "before": calibration.scores(calibration.softmax(logits), labels),
        "after": calibration.scores(calibration.softmax(logits, temperature), labels),
    }
