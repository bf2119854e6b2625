"""Prediction through an exported SavedModel alone (no project model code)."""

from __future__ import annotations

import json
import os
import re
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


def expand_paths(paths: list[str]) -> list[str]:
    """Files as given, and every visible file under each directory, in sorted order."""
    files = []
    for path in paths:
        if not os.path.isdir(path):
            files.append(path)
            continue
        for directory, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files += [os.path.join(directory, n) for n in sorted(filenames) if n[0] != "."]
    return files


def _read(path: str) -> bytes | str:
    if not os.path.exists(path):
        return "no such file or directory"
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        return f"unreadable: {err.strerror}"


def _reason(err: tf.errors.OpError) -> str:
    # The request checks' message sits after "assertion failed:" in bracketed parts;
    # the graph location around it means nothing to a user.
    text = err.message.split("assertion failed:", 1)[-1].split("\n")[0]
    text = re.sub(r"\{\{[^}]*\}\}", "", text).replace("] [", " ").strip(" []")
    return re.sub(r"element\(s\) at index \d+ (are|is)", "the file is", text)


def _answer(path: str, out: dict[str, tf.Tensor], row: int) -> dict[str, Any]:
    """{"file", "top_k"}, and for a multi-label export "labels": those above threshold."""
    labels, scores = out["top_k_labels"].numpy()[row], out["top_k_scores"].numpy()[row]
    answer = {"file": path,
              "top_k": [{"label": t.decode(), "score": float(s)} for t, s in zip(labels, scores)]}
    if "labels" in out:
        answer["labels"] = [t.decode() for t in out["labels"].numpy()[row] if t]
    return answer


def predict_files(
    saved_model_dir: str, paths: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Top-k predictions for every readable, valid image file; the rest as failures.

    Directories are expanded. The good files go as one request; when the model
    refuses it, each file goes alone, so one bad file costs only its own answer.

    Returns:
      (predictions: {"file", "top_k"[, "labels"]} per good file, in order,
       failures: {"file", "error"} per file that could not be answered).
    """
    serve = load_signature(saved_model_dir)
    files = expand_paths(paths)
    contents = {path: _read(path) for path in files}
    failures = [{"file": p, "error": c} for p, c in contents.items() if isinstance(c, str)]
    good = [p for p in files if not isinstance(contents[p], str)]
    if not good:
        return [], failures
    try:
        out = serve(image_bytes=tf.constant([contents[p] for p in good]))
        return [_answer(p, out, i) for i, p in enumerate(good)], failures
    except tf.errors.InvalidArgumentError:
        pass
    predictions = []
    for path in good:
        try:
            out = serve(image_bytes=tf.constant([contents[path]]))
            predictions.append(_answer(path, out, 0))
        except tf.errors.InvalidArgumentError as err:
            failures.append({"file": path, "error": _reason(err)})
    return predictions, sorted(failures, key=lambda f: files.index(f["file"]))


def saved_model_predictor(saved_model_dir: str) -> tuple[Callable, list[str]]:
    """The SavedModel's serving_default as encoded bytes -> probabilities, and its labels."""
    serve = load_signature(saved_model_dir)
    metadata = os.path.join(saved_model_dir, "assets.extra", "visiontrain.json")
    labels = json.load(open(metadata))["labels"] if os.path.exists(metadata) else []
    return (lambda encoded: serve(image_bytes=encoded)["probabilities"]), labels


def saved_model_thresholds(saved_model_dir: str) -> dict[str, Any]:
    """The per-label thresholds record a multi-label export carries in its metadata.

    Raises:
      ValueError: the export has none (a single-label export, or an older one).
    """
    metadata = os.path.join(saved_model_dir, "assets.extra", "visiontrain.json")
    record = json.load(open(metadata)).get("thresholds") if os.path.exists(metadata) else None
    if record is None:
        raise ValueError(f"{saved_model_dir} carries no per-label thresholds, so it is not a "
                         "multi-label export; evaluate multi-label data with a multi-label "
                         "model (or its run: --run_dir).")
    return record


def saved_model_image_size(saved_model_dir: str) -> int:
    """The input side recorded in an export's metadata (64 when it has none)."""
    metadata = os.path.join(saved_model_dir, "assets.extra", "visiontrain.json")
    return int(json.load(open(metadata))["image_size"]) if os.path.exists(metadata) else 64
