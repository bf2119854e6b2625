"""TF Serving warmup records: assets.extra/tf_serving_warmup_requests.

TF Serving replays these PredictionLog records when it loads a version, before it
marks the version available, so the first real request does not pay for graph
initialisation. The exporter replays them itself first: a record that fails
here would fail in the server.
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def prediction_log(signature_name: str, inputs: dict[str, Any]) -> prediction_log_pb2.PredictionLog:
    """A PredictionLog holding one PredictRequest for `signature_name`."""
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(signature_name=signature_name)
    )
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def write_warmup(saved_model_dir: str, requests: dict[str, dict[str, Any]]) -> str:
    """Writes one record per signature of `requests`; returns the file's path."""
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for name, inputs in requests.items():
            writer.write(prediction_log(name, inputs).SerializeToString())
    return path


def read_warmup(path: str) -> list[tuple[str, dict[str, Any]]]:
    """(signature name, {input name: ndarray}) of every record of a warmup file."""
    requests = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        requests.append((request.model_spec.signature_name or "serving_default", inputs))
    return requests


def replay_warmup(saved_model_dir: str) -> list[str]:
    """Calls the loaded model with every warmup record; returns the signatures called.

    Raises:
      RuntimeError: naming the record and signature that failed, with TF's message.
    """
    loaded = tf.saved_model.load(saved_model_dir)
    called = []
    for index, (name, inputs) in enumerate(read_warmup(os.path.join(saved_model_dir, WARMUP_FILE))):
        if name not in loaded.signatures:
            raise RuntimeError(
                f"Warmup record {index} asks for signature {name!r}, which the model lacks "
                f"(it has {sorted(loaded.signatures)})."
            )
        try:
            loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        except (tf.errors.OpError, TypeError, ValueError) as err:
            raise RuntimeError(f"Warmup record {index} ({name}) failed: {err}") from err
        called.append(name)
    return called
