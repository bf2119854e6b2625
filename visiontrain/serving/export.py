"""Exports a trained run as a versioned SavedModel with explicit serving signatures.

Every signature (see `serving.signatures`) runs the shared evaluation
preprocessing, so serving sees the pixels that evaluation saw. The graph holds
only TF ops and the model's own Keras layers; the post-export check proves it
loads and agrees in a process that imports nothing but TensorFlow.

    EXPORT/NAME/
      1/ saved_model.pb
         variables/
         assets.extra/visiontrain.json                 labels, preprocessing, weights, T
                     /tf_serving_warmup_requests       PredictionLog TFRecord
                     /export_report.json               checks and their figures
                     /model_<mode>.tflite              with --tflite
      2/ ...

A version is written as EXPORT/NAME/.tmp-<version>-<pid>, checked, and only then
renamed into place: TF Serving, which polls EXPORT/NAME, never sees a
half-written or unchecked version, and an existing version is never overwritten.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Protocol

import keras
import numpy as np

from visiontrain.config import DataConfig, ExportConfig
from visiontrain.fileio import publish, write_bytes_atomic, write_json_atomic
from visiontrain.pipelines import preprocess, record_sources
from visiontrain.serving import calibrate, onnx_export, signatures, tflite, verify_export, warmup

METADATA = os.path.join("assets.extra", "visiontrain.json")
REPORT = os.path.join("assets.extra", "export_report.json")
CHECK_IMAGES = 8
CALIBRATION_IMAGES = 64


class ExportableRun(Protocol):
    """What export reads of a run: the fields of `training.rundir.LoadedRun`, which
    `load_run` returns (serving sits beside training in the package layout, so it names
    the fields instead of importing the class)."""

    model: keras.Model
    labels: list[str]
    data: DataConfig
    results: dict[str, Any]
    checkpoint: str
    exported_weights: str
    train_image_size: int


def _remove_stale_versions(export_dir: str) -> None:
    """Removes the temporary version folders of exports that were killed.

    The caller holds the export directory's lock (tools/export.py), so no live export
    owns one; TF Serving never loads them (their names are not numbers).
    """
    if not os.path.isdir(export_dir):
        return
    for name in os.listdir(export_dir):
        if name.startswith(".tmp-"):
            logging.info("Removing %s, left by an export that was stopped.", name)
            shutil.rmtree(os.path.join(export_dir, name), ignore_errors=True)


def next_version(export_dir: str) -> int:
    """1 + the highest integer version directory under export_dir (1 when none)."""
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(n) for n in os.listdir(export_dir) if n.isdigit()]
    return max(versions, default=0) + 1


def measured_validation(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The validation metrics results.json holds for each set of weights, by name.

    "raw" and "ema": the newest checkpoint's (validation_by_weights). "averaged": the
    checkpoint mean of --average_checkpoints. "best_single": the best checkpoint
    (best.json, accuracy only) when it is an earlier one than the newest, because the
    averaged record is judged against it and its figure belongs in any comparison.
    """
    measured = dict(results.get("validation_by_weights") or {})
    if not measured and "validation" in results:
        # A results.json without validation_by_weights holds the figures of its "weights".
        measured[results.get("weights", "raw")] = results["validation"]
    if "averaged" in results:
        measured["averaged"] = results["averaged"]["validation"]
    best = results.get("best", {})
    if "step" in best and best["step"] != results.get("step"):
        measured["best_single"] = {"accuracy": best["accuracy"]}
    return measured


def _why(evaluated: str, exported: str, results: dict[str, Any]) -> str:
    """Why the export holds weights other than the best evaluated ones."""
    if exported == "averaged":
        return "--weights=averaged exports the checkpoint mean whatever its score."
    if evaluated == "ema":
        return "the checkpoint holds no EMA weights to restore, so the raw weights were exported."
    if evaluated == "averaged":
        return "--weights=averaged would export the checkpoint mean."
    return (f"that is the best checkpoint (step {results['best']['step']}, "
            f"RUN/{results.get('best_weights_file', 'best.weights.h5')}), which "
            "visiontrain-export does not export.")


def weights_record(results: dict[str, Any], exported: str) -> dict[str, Any]:
    """Which weights evaluated best, which ones the export holds, and the figures compared.

    `exported` names the weights the export holds ("raw", "ema" or "averaged"; see
    `LoadedRun.exported_weights`). "validation" is each measured candidate's validation
    accuracy (the metric the loop chooses by); "evaluated_best" is the highest of them,
    or results.json's "weights" when it holds no figures (None without a results.json).
    When the export holds other weights, "note" says so with both figures and a warning
    is logged.
    """
    scores = {name: metrics["accuracy"] for name, metrics in measured_validation(results).items()
              if "accuracy" in metrics}
    evaluated = max(scores, key=scores.get) if scores else results.get("weights")
    if exported in scores and scores[exported] == scores.get(evaluated):
        evaluated = exported  # a tie is no reason for a warning
    record = {"evaluated_best": evaluated, "exported": exported, "validation": scores}
    if evaluated is not None and evaluated != exported:
        held, best = (f"validation accuracy {scores[name]:.4f}" if name in scores
                      else "no figure in results.json" for name in (exported, evaluated))
        record["note"] = (
            f"The export holds the {exported} weights ({held}), but the {evaluated} weights "
            f"evaluated best ({best}): {_why(evaluated, exported, results)}")
        # An earlier best checkpoint is a fact to record, not a choice to warn about:
        # the export cannot hold it, so every early-stopped run would warn.
        log = logging.info if evaluated == "best_single" else logging.warning
        log(record["note"])
    return record


def sample_images(data_dir: str, split: str, count: int) -> list[bytes]:
    """Up to `count` encoded images of a split, spread over its shards."""
    if not data_dir or not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"The run's data_dir {data_dir!r} is gone; the export checks run on its "
            f"{split} images. Restore the shards (or pass them to the run's config)."
        )
    records = record_sources.encoded_records(data_dir, split, batch_size=1, interleave=True)
    return [e[0] for e, _ in records.take(count).as_numpy_iterator()]


def _call(endpoints: dict[str, Any], requests: dict[str, dict[str, Any]]):
    return {
        name: {k: v.numpy() for k, v in endpoints[name](**inputs).items()}
        for name, inputs in requests.items()
    }


def preprocessed(encoded: list[bytes], data: DataConfig) -> np.ndarray:
    """uint8 [N, S, S, 3]: what the SavedModel feeds its network, for TFLite and ONNX."""
    return np.stack([
        preprocess.preprocess_for_eval(e, data.image_size, data.eval_crop_fraction).numpy()
        for e in encoded
    ])


def onnx_report(
    model: keras.Model, data: DataConfig, encoded: list[bytes], served: np.ndarray,
    out_dir: str, temperature: float,
) -> dict[str, Any]:
    """Converts to ONNX, writes it beside the SavedModel; fails unless onnxruntime agrees."""
    serialized = onnx_export.convert(model, data.image_size, temperature)
    path = os.path.join(out_dir, "assets.extra", "model.onnx")
    write_bytes_atomic(path, serialized)
    return {
        "file": os.path.relpath(path, out_dir),
        "bytes": len(serialized),
        "opset": onnx_export.OPSET,
        "converter": "tf2onnx on the frozen network",
        **onnx_export.parity(onnx_export.predict(serialized, preprocessed(encoded, data)),
                             served),
    }


def tflite_report(
    model: keras.Model, data: DataConfig, mode: str, encoded: list[bytes],
    served: np.ndarray, out_dir: str, temperature: float = 1.0,
) -> dict[str, Any]:
    """Converts to TFLite, writes it beside the SavedModel, compares its top-1."""
    calibration = None
    if mode == "int8":
        calibration = preprocessed(
            sample_images(data.data_dir, "train", CALIBRATION_IMAGES), data)
    flatbuffer = tflite.convert(model, data.image_size, mode, calibration, temperature)
    path = os.path.join(out_dir, "assets.extra", f"model_{mode}.tflite")
    with open(path, "wb") as f:
        f.write(flatbuffer)
    lite = tflite.predict(flatbuffer, preprocessed(encoded, data))
    return {
        "mode": mode,
        "file": os.path.relpath(path, out_dir),
        "bytes": len(flatbuffer),
        "calibration_images": 0 if calibration is None else len(calibration),
        "top1_agreement_with_saved_model": float(
            np.mean(lite.argmax(-1) == served.argmax(-1))
        ),
        "max_abs_probability_diff": float(np.max(np.abs(lite - served))),
        "images": len(encoded),
    }


def check_export(out_dir: str, requests, expected) -> dict[str, Any]:
    """Warmup replay, TF-only subprocess check, op scan and signature description.

    Raises:
      RuntimeError: any check failed; the message says which and by how much.
    """
    replayed = warmup.replay_warmup(out_dir)
    diffs = verify_export.check_in_subprocess(out_dir, requests, expected)
    worst = max(v for outputs in diffs.values() for v in outputs.values())
    if worst > verify_export.TOLERANCE:
        raise RuntimeError(
            f"The reloaded SavedModel disagrees with the exporter by {worst:g} "
            f"(> {verify_export.TOLERANCE:g}): {diffs}"
        )
    bad_ops = verify_export.forbidden_ops(out_dir)
    if bad_ops:
        raise RuntimeError(f"The SavedModel calls back into Python ({bad_ops}); it cannot serve.")
    return {
        "warmup_signatures_replayed": replayed,
        "tf_only_process_max_abs_diff": diffs,
        "tolerance": verify_export.TOLERANCE,
        "python_ops": bad_ops,
        "signatures": verify_export.describe_signatures(
            verify_export.saved_model_cli_show(out_dir)),
    }


def _metadata(config: ExportConfig, run: ExportableRun, version: int,
              thresholds: dict[str, Any] | None, temperature: float,
              learned: dict[str, Any]) -> dict[str, Any]:
    """What assets.extra/visiontrain.json holds: how to feed the model and what it is."""
    data = run.data
    weights = weights_record(run.results, run.exported_weights)
    return {
        "labels": run.labels,
        "image_size": data.image_size,
        "eval_crop_fraction": data.eval_crop_fraction,
        "train_image_size": run.train_image_size,
        "preprocessing": (
            f"decode to RGB, centre crop {data.eval_crop_fraction:g} of the shorter side, "
            f"bilinear resize to {data.image_size}x{data.image_size}, float32 in [0, 255]; "
            "no test-time augmentation"),
        "input_value_range": [0, 255],
        "max_pixels": config.max_pixels,
        "top_k": min(config.top_k, len(run.labels)),
        "run_dir": os.path.abspath(config.run_dir),
        "checkpoint": run.checkpoint,
        "weights": weights["exported"],
        "weights_record": weights,
        # The figures of the weights exported, not of the ones results.json chose.
        "validation": measured_validation(run.results).get(weights["exported"], {}),
        "version": version,
        "task": "single_label" if thresholds is None else "multi_label",
        **({} if thresholds is None else {"thresholds": thresholds}),
        "temperature": temperature,
        **learned,
    }


def export_run(
    config: ExportConfig, run: ExportableRun, thresholds: dict[str, Any] | None = None,
) -> str:
    """Exports a loaded run into `config.export_dir/<version>`; returns that path.

    Args:
      config: where to export and what to check.
      run: the run, as `training.rundir.load_run` returns it.
      thresholds: a multi-label run's thresholds record (RUN/thresholds.json, written
        by visiontrain-evaluate): baked into the graph and kept in the metadata.
    """
    model, labels, data = run.model, run.labels, run.data
    if thresholds is not None and list(thresholds["labels"]) != list(labels):
        raise ValueError(f"The thresholds name labels {thresholds['labels']}, the run "
                         f"{labels}; tune them again with visiontrain-evaluate --run_dir.")
    single_label_only = [flag for flag, on in (
        ("--calibrate", config.calibrate), ("--abstain", config.abstain),
        ("--tflite", config.tflite), ("--onnx", config.onnx)) if on]
    if thresholds is not None and single_label_only:
        # Their softmax temperature, top-1 threshold and frozen softmax network have no
        # meaning for per-label sigmoids, whose tuned thresholds are the calibrated decisions.
        raise ValueError(
            f"{', '.join(single_label_only)} work on single-label runs; {config.run_dir} is "
            "multi-label (its per-label thresholds are its decisions): drop them.")
    version = next_version(config.export_dir) if config.version == "auto" else int(config.version)
    final = os.path.join(config.export_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(
            f"{final} exists; versions are never overwritten. Use --version=auto or a new number."
        )
    if config.tflite and config.tflite not in tflite.MODES:
        raise ValueError(f"--tflite={config.tflite!r}; known: {', '.join(tflite.MODES)}.")
    if config.tflite:
        tflite.require_litert()
    if config.onnx:
        onnx_export.require_onnx()
    # Each stage takes seconds to tens of seconds: say which one is running.
    logging.info("Export: building the serving signatures.")
    temperature, threshold, learned = calibrate.plan(config, model, data)
    archive, endpoints = signatures.build_archive(
        model, labels, data.image_size, data.eval_crop_fraction, config.top_k, config.max_pixels,
        None if thresholds is None else thresholds["thresholds"], temperature, threshold,
    )
    encoded = sample_images(data.data_dir, "validation", CHECK_IMAGES)
    requests = signatures.sample_requests(encoded, data.image_size)
    expected = _call(endpoints, requests)
    _remove_stale_versions(config.export_dir)
    tmp = os.path.join(config.export_dir, f".tmp-{version}-{os.getpid()}")
    try:
        logging.info("Export: writing the SavedModel to %s.", tmp)
        archive.write_out(tmp, verbose=False)
        write_json_atomic(os.path.join(tmp, METADATA),
                          _metadata(config, run, version, thresholds, temperature, learned))
        warmup.write_warmup(tmp, requests)
        logging.info("Export: checking it in a process that imports only TensorFlow.")
        report = {"version": version, "check_images": len(encoded), **learned,
                  **check_export(tmp, requests, expected)}
        if config.tflite or config.onnx:
            logging.info("Export: converting to %s and checking agreement.",
                         " and ".join(n for n, on in (("TFLite", config.tflite),
                                                      ("ONNX", config.onnx)) if on))
        if config.tflite:
            report["tflite"] = tflite_report(
                model, data, config.tflite, encoded,
                expected["serving_default"]["probabilities"], tmp, temperature,
            )
        if config.onnx:
            report["onnx"] = onnx_report(
                model, data, encoded, expected["serving_default"]["probabilities"], tmp,
                temperature,
            )
        write_json_atomic(os.path.join(tmp, REPORT), report)
        publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logging.info("Exported %s to %s.", config.run_dir, final)
    return final
