"""What `--calibrate` and `--abstain` learn from the validation split before an export.

--calibrate: one temperature T (Guo et al., 2017) is fitted to the whole validation
split by minimising NLL; every signature then returns softmax(logits / T). Dividing by
T > 0 keeps the argmax, so accuracy is unchanged; the record keeps the scores before and
after so a reader sees what it bought.

--abstain: a threshold on the (calibrated) top probability; below it a request is
`abstained`. `auto` takes the lowest threshold whose accepted validation images reach
--abstain_target accuracy. The record holds the coverage/accuracy trade-off and, with
--unknown_data_dir, the abstain rate on classes the model never saw.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from visiontrain import calibration
from visiontrain.config import DataConfig, ExportConfig
from visiontrain.pipelines import preprocess, record_sources

BATCH_SIZE = 64
# Thresholds of the printed coverage/accuracy trade-off (the chosen one is added).
TRADE_OFF = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


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
    for encoded, label in record_sources.encoded_records(data.data_dir, split, BATCH_SIZE):
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



def _abstention(
    config: ExportConfig, probabilities: np.ndarray, labels: np.ndarray,
) -> tuple[float, dict[str, Any]]:
    """The abstain threshold and its record, from validation probabilities (calibrated)."""
    if config.abstain == "auto":
        threshold = calibration.abstain_threshold(probabilities, labels, config.abstain_target)
    else:
        threshold = float(config.abstain)
    chosen = calibration.coverage_accuracy(probabilities, labels, threshold)
    return threshold, {
        "threshold": threshold,
        "mode": config.abstain,
        "target_accuracy": config.abstain_target if config.abstain == "auto" else None,
        "validation": chosen,
        "abstain_rate_known_classes": 1.0 - chosen["coverage"],
        "trade_off": [calibration.coverage_accuracy(probabilities, labels, t)
                      for t in sorted(set(TRADE_OFF) | {threshold})],
    }


def plan(
    config: ExportConfig, model: keras.Model, data: DataConfig
) -> tuple[float, float | None, dict[str, Any]]:
    """(temperature, abstain threshold or None, record) that the export bakes in.

    The record has "calibration" with --calibrate and "abstain" with --abstain (None
    otherwise). Validation logits are computed once for both.

    Raises:
      ValueError: too few images to calibrate, or an unreachable --abstain_target.
    """
    record = {"calibration": None, "abstain": None}
    if not (config.calibrate or config.abstain):
        return 1.0, None, record
    logits, labels = split_logits(model, data)
    temperature = 1.0
    if config.calibrate:
        temperature, record["calibration"] = fit(logits, labels)
    if not config.abstain:
        return temperature, None, record
    threshold, record["abstain"] = _abstention(
        config, calibration.softmax(logits, temperature), labels)
    if config.unknown_data_dir:
        unknown, _ = split_logits(
            model, dataclasses.replace(data, data_dir=config.unknown_data_dir))
        confidence = calibration.softmax(unknown, temperature).max(axis=1)
        record["abstain"].update(
            unknown_data_dir=config.unknown_data_dir, unknown_images=int(len(confidence)),
            abstain_rate_unknown_classes=float(np.mean(confidence < threshold)))
    return temperature, threshold, record


def format_record(record: dict[str, Any]) -> str:
    """What --calibrate and --abstain found, as lines for the export tool to print."""
    lines = []
    fitted = record.get("calibration")
    if fitted:
        before, after = fitted["before"], fitted["after"]
        lines.append(f"Temperature {fitted['temperature']:.4f} on {fitted['images']} "
                     f"validation images ({before['ece_bins']} equal-width ECE bins):")
        for name in ("nll", "brier", "ece", "accuracy"):
            lines.append(f"  {name:<9}{before[name]:.4f} -> {after[name]:.4f}")
    abstain = record.get("abstain")
    if abstain:
        lines.append(f"Abstain below top probability {abstain['threshold']:.4f} "
                     f"(--abstain={abstain['mode']}):")
        lines.append("  threshold  coverage  accuracy on accepted")
        for row in abstain["trade_off"]:
            mark = "  <- chosen" if row["threshold"] == abstain["threshold"] else ""
            lines.append(f"  {row['threshold']:9.4f}  {row['coverage']:8.4f}  "
                         f"{row['accuracy_on_accepted']:.4f}{mark}")
        lines.append(f"  abstain rate: known classes {abstain['abstain_rate_known_classes']:.4f}"
                     + (f", unknown classes {abstain['abstain_rate_unknown_classes']:.4f} "
                        f"({abstain['unknown_images']} images)"
                        if "abstain_rate_unknown_classes" in abstain else ""))
    return "\n".join(lines)
