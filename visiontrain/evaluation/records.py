"""Evaluation inputs and predictors: a split's encoded records, a run or a SavedModel."""

from __future__ import annotations

import json
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from visiontrain.config import DataConfig
from visiontrain.pipelines import datasets, schema
from visiontrain.pipelines import manifest as manifest_lib


def encoded_records(
    data_dir: str, split: str, batch_size: int, interleave: bool = False
) -> tf.data.Dataset:
    """(encoded image bytes [B], labels [B]) of a split, unprocessed.

    In file order; with `interleave`, one record of each shard in turn, so a short
    prefix samples every shard (shards are written round-robin over classes).
    """
    manifest = manifest_lib.load_manifest(data_dir)
    files = [s["path"] for s in datasets.split_shards(data_dir, manifest, split)]

    def parse(serialized):
        features = schema.parse_example(serialized)
        return features[schema.ENCODED], tf.cast(features[schema.LABEL], tf.int32)

    if interleave:
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=len(files), block_length=1
        )
    else:
        records = tf.data.TFRecordDataset(files)
    return records.map(parse).batch(batch_size)


def collect(
    predict: Callable[[tf.Tensor], tf.Tensor], records: tf.data.Dataset, keep_mistakes: int = 16
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, bytes, int, int]]]:
    """Runs `predict` (encoded bytes -> probabilities) over all records.

    Returns:
      probabilities [N, C], labels [N], and the `keep_mistakes` most confident
      mistakes as (confidence, encoded bytes, true label, predicted label).
    """
    probabilities, labels, mistakes = [], [], []
    for encoded, label in records:
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


def saved_model_predictor(saved_model_dir: str) -> tuple[Callable, list[str]]:
    """The SavedModel's serving_default as encoded bytes -> probabilities, and its labels."""
    from visiontrain.serving.predict import load_signature

    serve = load_signature(saved_model_dir)
    metadata = os.path.join(saved_model_dir, "assets.extra", "visiontrain.json")
    labels = json.load(open(metadata))["labels"] if os.path.exists(metadata) else []
    return (lambda encoded: serve(image_bytes=encoded)["probabilities"]), labels


def saved_model_image_size(saved_model_dir: str) -> int:
    """The input side recorded in an export's metadata (64 when it has none)."""
    metadata = os.path.join(saved_model_dir, "assets.extra", "visiontrain.json")
    return int(json.load(open(metadata))["image_size"]) if os.path.exists(metadata) else 64


def model_predictor(model, data: DataConfig) -> Callable:
    """A Keras model plus the shared eval preprocessing, as encoded bytes -> probabilities."""
    from visiontrain.pipelines.preprocess import preprocess_for_eval

    @tf.function
    def predict(encoded):
        images = tf.map_fn(
            lambda e: preprocess_for_eval(e, data.image_size, data.eval_crop_fraction),
            encoded,
            fn_output_signature=tf.TensorSpec([data.image_size] * 2 + [3], tf.uint8),
        )
        return tf.nn.softmax(tf.cast(model(tf.cast(images, tf.float32), training=False),
                                     tf.float32))

    return predict


def check_labels(model_labels: list[str], data_labels: list[str], source: str) -> None:
    """A model and a dataset must agree on the class names, in order."""
    if model_labels and list(model_labels) != list(data_labels):
        raise ValueError(
            f"The label map of {source} ({len(model_labels)} classes: {model_labels[:5]}...) "
            f"does not match the data's ({len(data_labels)}: {data_labels[:5]}...)."
        )
