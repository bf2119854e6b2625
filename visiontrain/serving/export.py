"""Exports a trained run as a versioned SavedModel with explicit serving signatures.

Every signature runs the shared evaluation preprocessing
(`pipelines.preprocess.preprocess_for_eval`), so serving sees the pixels that
evaluation saw. The graph holds only TF ops and the model's own Keras layers: it
loads with `tf.saved_model.load` in a process that imports nothing but TensorFlow.

    EXPORT/NAME/
      1/ saved_model.pb, variables/, assets.extra/visiontrain.json
      2/ ...
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any

import keras
import tensorflow as tf

from visiontrain.config import DataConfig, ExportConfig, ModelConfig
from visiontrain.models.registry import build_model
from visiontrain.pipelines import preprocess, schema
from visiontrain.training import rundir

METADATA = os.path.join("assets.extra", "visiontrain.json")


def load_run(run_dir: str) -> tuple[keras.Model, list[str], DataConfig, dict[str, Any]]:
    """Rebuilds a run's model from its config.json and restores its newest checkpoint.

    Returns:
      The model, its class names, its data config, and results.json (or {}).
    """
    config_path = os.path.join(run_dir, rundir.CONFIG)
    if not os.path.exists(config_path):
        raise FileNotFoundError(
            f"{run_dir} is not a visiontrain run directory (no {rundir.CONFIG}); pass the "
            "--run_dir of a `visiontrain-train` run."
        )
    config = rundir.read_json(config_path)
    data = DataConfig(**config["data"])
    model = build_model(ModelConfig(**config["model"]), data.image_size)
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, rundir.CHECKPOINTS))
    if latest is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint to export; train it first.")
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    results_path = os.path.join(run_dir, rundir.RESULTS)
    results = rundir.read_json(results_path) if os.path.exists(results_path) else {}
    logging.info("Loaded %s from %s.", config["model"]["name"], latest)
    return model, list(config["labels"]), data, dict(results, checkpoint=latest)


def build_archive(
    model: keras.Model,
    labels: list[str],
    image_size: int,
    crop_fraction: float,
    top_k: int,
) -> keras.export.ExportArchive:
    """The serving signatures around `model`.

    serving_default:    image_bytes string [None] (JPEG, PNG, GIF, BMP)
    predict_images:     images uint8 [None, H, W, 3], any H and W
    predict_tf_example: examples string [None], serialized tf.Example (shard schema)
    Each returns probabilities [None, C], top_k_indices, top_k_scores, top_k_labels.
    """
    class_names = tf.constant(labels)
    k = min(top_k, len(labels))
    image_spec = tf.TensorSpec([image_size, image_size, 3], tf.uint8)

    def outputs(images):
        logits = tf.cast(model(tf.cast(images, tf.float32), training=False), tf.float32)
        probabilities = tf.nn.softmax(logits)
        scores, indices = tf.math.top_k(probabilities, k)
        return {
            "probabilities": probabilities,
            "top_k_indices": indices,
            "top_k_scores": scores,
            "top_k_labels": tf.gather(class_names, indices),
        }

    def decode_all(encoded):
        return tf.map_fn(
            lambda e: preprocess.preprocess_for_eval(e, image_size, crop_fraction),
            encoded,
            fn_output_signature=image_spec,
        )

    def serve_bytes(image_bytes):
        return outputs(decode_all(image_bytes))

    def serve_images(images):
        return outputs(preprocess.preprocess_decoded_for_eval(images, image_size, crop_fraction))

    def serve_examples(examples):
        features = tf.io.parse_example(examples, {schema.ENCODED: schema.FEATURES[schema.ENCODED]})
        return outputs(decode_all(features[schema.ENCODED]))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    archive.add_endpoint(
        "predict_images", serve_images, [tf.TensorSpec([None, None, None, 3], tf.uint8, "images")]
    )
    archive.add_endpoint(
        "predict_tf_example", serve_examples, [tf.TensorSpec([None], tf.string, name="examples")]
    )
    return archive


def next_version(export_dir: str) -> int:
    """1 + the highest integer version directory under export_dir (1 when none)."""
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(n) for n in os.listdir(export_dir) if n.isdigit()]
    return max(versions, default=0) + 1


def export_run(config: ExportConfig) -> str:
    """Exports `config.run_dir` into `config.export_dir/<version>`; returns that path.

    The SavedModel is written under a temporary name and renamed into place, so TF
    Serving, which polls the directory, never sees a half-written version.
    """
    version = next_version(config.export_dir) if config.version == "auto" else int(config.version)
    final = os.path.join(config.export_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(
            f"{final} exists; versions are never overwritten. Use --version=auto or a new number."
        )
    model, labels, data, results = load_run(config.run_dir)
    archive = build_archive(model, labels, data.image_size, data.eval_crop_fraction, config.top_k)
    tmp = os.path.join(config.export_dir, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    archive.write_out(tmp, verbose=False)
    metadata = {
        "labels": labels,
        "image_size": data.image_size,
        "eval_crop_fraction": data.eval_crop_fraction,
        "input_value_range": [0, 255],
        "run_dir": os.path.abspath(config.run_dir),
        "checkpoint": results.get("checkpoint"),
        "weights": results.get("weights", "raw"),
        "validation": results.get("validation", {}),
        "version": version,
    }
    os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
    with open(os.path.join(tmp, METADATA), "w") as f:
        json.dump(metadata, f, indent=2)
    os.replace(tmp, final)
    logging.info("Exported %s to %s.", config.run_dir, final)
    return final
