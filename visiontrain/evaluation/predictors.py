"""Evaluation inputs and predictors: a split's encoded records, a run or a SavedModel."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import tensorflow as tf
from absl import logging

from visiontrain.config import DataConfig
from visiontrain.pipelines.preprocess import decode_rgb, preprocess_for_eval

TTA_MODES = ("none", "flip")
# A job longer than a few seconds says how far it is; this often.
PROGRESS_SECONDS = 10.0


def collect(
    predict: Callable[[tf.Tensor], tf.Tensor], records: tf.data.Dataset, keep_mistakes: int = 16,
    total: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, bytes, int, int]]]:
    """Runs `predict` (encoded bytes -> probabilities) over all records, logging its
    progress every PROGRESS_SECONDS (of `total` records, when known).

    Returns:
      probabilities [N, C], labels [N], and the `keep_mistakes` most confident
      mistakes as (confidence, encoded bytes, true label, predicted label).
    """
    probabilities, labels, mistakes = [], [], []
    start = last = time.monotonic()
    done = 0
    for encoded, label in records:
        done += len(label)
        if time.monotonic() - last >= PROGRESS_SECONDS:
            last = time.monotonic()
            logging.info("evaluated %d%s images, %.0f img/s", done,
                         f"/{total}" if total else "", done / (last - start))
        batch = predict(encoded).numpy()
        label = label.numpy()
        predicted = batch.argmax(axis=1)
        for i in np.flatnonzero(predicted != label):
            mistakes.append((float(batch[i, predicted[i]]), encoded[i].numpy(), int(label[i]),
                             int(predicted[i])))
        mistakes = sorted(mistakes, key=lambda m: -m[0])[:keep_mistakes]
        probabilities.append(batch)
        labels.append(label)
    return np.concatenate(probabilities), np.concatenate(labels), mistakes


def collect_scores(
    predict: Callable[[tf.Tensor], tf.Tensor], records: tf.data.Dataset
) -> tuple[np.ndarray, np.ndarray]:
    """Runs `predict` over all records: (scores [N, C], labels as the records hold them)."""
    scores, labels = [], []
    for encoded, label in records:
        scores.append(predict(encoded).numpy())
        labels.append(label.numpy())
    return np.concatenate(scores), np.concatenate(labels)


def model_predictor(model, data: DataConfig, multi_label: bool = False) -> Callable:
    """A Keras model plus the shared eval preprocessing, as encoded bytes -> probabilities
    (softmax over the classes; per-label sigmoid for a multi-label model)."""
    activation = tf.nn.sigmoid if multi_label else tf.nn.softmax

    @tf.function
    def predict(encoded):
        images = tf.map_fn(
            lambda e: preprocess_for_eval(e, data.image_size, data.eval_crop_fraction),
            encoded,
            fn_output_signature=tf.TensorSpec([data.image_size] * 2 + [3], tf.uint8),
        )
        return activation(tf.cast(model(tf.cast(images, tf.float32), training=False),
                                  tf.float32))

    return predict


def with_tta(predict: Callable[[tf.Tensor], tf.Tensor], mode: str) -> Callable:
    """`predict` with test-time augmentation: "flip" averages the probabilities of each
    image and of its mirror image; "none" is `predict` itself.

    The mirror image is re-encoded as PNG (lossless), so any encoded-bytes predictor, a
    SavedModel's serving signature included, sees it through its own preprocessing.
    """
    if mode not in TTA_MODES:
        raise ValueError(f"Unknown --eval_tta={mode!r}; use one of {TTA_MODES}.")
    if mode == "none":
        return predict

    @tf.function
    def mirror(encoded):
        return tf.map_fn(lambda e: tf.io.encode_png(tf.image.flip_left_right(decode_rgb(e))),
                         encoded, fn_output_signature=tf.string)

    return lambda encoded: (predict(encoded) + predict(mirror(encoded))) / 2


def check_labels(model_labels: list[str], data_labels: list[str], source: str) -> None:
    """A model and a dataset must agree on the class names, in order."""
    if model_labels and list(model_labels) != list(data_labels):
        raise ValueError(
            f"The label map of {source} ({len(model_labels)} classes: {model_labels[:5]}...) "
            f"does not match the data's ({len(data_labels)}: {data_labels[:5]}...)."
        )
