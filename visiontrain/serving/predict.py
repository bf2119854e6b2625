"""Prediction through an exported SavedModel alone (no project model code)."""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import tensorflow as tf


def load_signature(saved_model_dir: str, name: str = "serving_default"):
    """Loads a SavedModel and returns one of its signatures, with clear errors."""
    if not os.path.exists(os.path.join(saved_model_dir, "saved_model.pb")):
        raise FileNotFoundError(
            f"{saved_model_dir} holds no saved_model.pb; pass a version directory such as "
            "EXPORT/NAME/1."
        )
    loaded = tf.saved_model.load(saved_model_dir)
    if name not in loaded.signatures:
        raise ValueError(f"{saved_model_dir} has no signature {name!r}: {list(loaded.signatures)}")
    return loaded.signatures[name]


def predict_files(saved_model_dir: str, paths: list[str]) -> list[dict[str, Any]]:
    """Top-k predictions for image files, one dict per file, in order."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"No such image file(s): {', '.join(missing)}")
    serve = load_signature(saved_model_dir)
    encoded = [open(p, "rb").read() for p in paths]
    out = serve(image_bytes=tf.constant(encoded))
    labels = out["top_k_labels"].numpy()
    scores = out["top_k_scores"].numpy()
    return [
        {
            "file": path,
            "top_k": [
                {"label": label.decode(), "score": float(score)}
                for label, score in zip(labels[i], scores[i])
            ],
        }
        for i, path in enumerate(paths)
    ]


def saved_model_predictor(saved_model_dir: str) -> tuple[Callable, list[str]]:
    """The SavedModel's serving_default as encoded bytes -> probabilities, and its labels."""
    serve = load_signature(saved_model_dir)
    metadata = os.path.join(saved_model_dir, "assets.extra", "visiontrain.json")
    labels = json.load(open(metadata))["labels"] if os.path.exists(metadata) else []
    return (lambda encoded: serve(image_bytes=encoded)["probabilities"]), labels


def saved_model_image_size(saved_model_dir: str) -> int:
    """The input side recorded in an export's metadata (64 when it has none)."""
    metadata = os.path.join(saved_model_dir, "assets.extra", "visiontrain.json")
    return int(json.load(open(metadata))["image_size"]) if os.path.exists(metadata) else 64
