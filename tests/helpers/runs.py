"""Test helper: digit shards and `visiontrain-train` runs in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from tests.helpers.shards import write_dataset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A tiny deterministic recipe: 1500 digits at 8 px, 23 steps per epoch.
TINY = (
    "--model=small_cnn", "--image_size=8", "--global_batch_size=64", "--base_lr=0.4",
    "--crop_area_min=0.7", "--eval_crop_fraction=1.0", "--deterministic",
    "--shuffle_buffer=256",
)

# The session's `tiny_run` (tests/conftest.py): one epoch, a progress line per 4-step call.
TINY_RUN_FLAGS = ("--epochs=1", "--steps_per_loop=4", "--progress_every_s=0")


def write_digits(out_dir: str) -> str:
    """scikit-learn's 8x8 digits as RGB, in 4 train/4 validation shards."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16 * 255).astype(np.uint8)
    images = images[..., None].repeat(3, -1)
    labels = digits.target
    write_dataset(out_dir, (images[:1500], labels[:1500]), (images[1500:], labels[1500:]),
                  [str(i) for i in range(10)], num_shards=4)
    return out_dir


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}


def train_command(data_dir: str, run_dir: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "visiontrain.tools.train", f"--data_dir={data_dir}",
            f"--run_dir={run_dir}", *TINY, *flags]


def run_train(data_dir: str, run_dir: str, *flags: str, timeout: int = 300):
    """Runs training to its end; returns the CompletedProcess (stdout+stderr in .stdout)."""
    return subprocess.run(train_command(data_dir, run_dir, *flags), env=env(), timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_train(data_dir: str, run_dir: str, *flags: str, log_path: str) -> subprocess.Popen:
    log = open(log_path, "w")
    return subprocess.Popen(train_command(data_dir, run_dir, *flags), env=env(),
                            stdout=log, stderr=subprocess.STDOUT)


def checkpoint_steps(run_dir: str) -> list[int]:
    directory = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(directory):
        return []
    return sorted(int(name[5:-6]) for name in os.listdir(directory)
                  if name.startswith("ckpt-") and name.endswith(".index"))


def model_weights(checkpoint_path: str) -> dict[str, np.ndarray]:
    """Every model (and EMA) variable in a checkpoint, by checkpoint key."""
    reader = tf.train.load_checkpoint(checkpoint_path)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key.startswith(("model/", "ema/")) and "VARIABLE_VALUE" in key}


def step_and_iterations(checkpoint_path: str) -> tuple[int, int]:
    reader = tf.train.load_checkpoint(checkpoint_path)
    keys = reader.get_variable_to_shape_map()
    step = reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")
    iterations = [reader.get_tensor(k) for k in keys
                  if k.startswith("optimizer/") and "iterations" in k]
    return int(step), int(iterations[0])


def wait_for_log(process: subprocess.Popen, log_path: str, text: str, timeout: float = 120):
    """Waits until `text` appears in the process's log; fails if it exits or times out first."""
    deadline = time.time() + timeout
    while text not in open(log_path).read():
        assert process.poll() is None and time.time() < deadline, open(log_path).read()[-3000:]
        time.sleep(0.02)


def digit_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 RGB [1797, 8, 8, 3] and labels, as in write_digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16 * 255).astype(np.uint8)[..., None].repeat(3, -1), digits.target


def fit_and_save_run(run_dir: str, data, images: np.ndarray, labels: np.ndarray,
                     names: list[str], steps: int, lr: float = 1e-2) -> None:
    """A small_cnn fitted in process on one full batch for `steps` steps, saved as a run
    directory (`save_run`)."""
    import keras

    from visiontrain.config import ModelConfig
    from visiontrain.models.registry import build_model

    model_config = ModelConfig(name="small_cnn", num_classes=len(names))
    keras.utils.set_random_seed(0)
    model = build_model(model_config, data.image_size)
    model.compile(keras.optimizers.Adam(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # One epoch of the same batch `steps` times: Keras' per-epoch overhead would dominate.
    batches = tf.data.Dataset.from_tensors((images.astype(np.float32), labels)).repeat(steps)
    model.fit(batches, epochs=1, verbose=0)
    save_run(run_dir, model, model_config, data, names, {"weights": "raw"})


def save_run(run_dir: str, model, model_config, data, names: list[str], results: dict) -> None:
    """`model` as a run directory that `rundir.load_run` reads: a checkpoint, config.json
    and results.json."""
    import json

    from visiontrain.config import to_dict

    tf.train.Checkpoint(model=model).save(os.path.join(run_dir, "checkpoints", "ckpt"))
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump({"data": to_dict(data), "model": to_dict(model_config), "labels": names}, f)
    with open(os.path.join(run_dir, "results.json"), "w") as f:
        json.dump(results, f)


def run_without_model(data_dir: str, names: list[str]):
    """A `LoadedRun` with no network or weights, for export checks that refuse a request
    before anything is built or read."""
    from visiontrain.config import DataConfig
    from visiontrain.training.rundir import LoadedRun

    return LoadedRun(model=None, labels=names, data=DataConfig(data_dir=data_dir), results={},
                     checkpoint="", exported_weights="raw", train_image_size=0)


def untrained_run(root, model_name: str, weights: str = "raw") -> tuple[str, np.ndarray]:
    """An untrained `model_name` at 16 px on 3 classes of random images, saved as a run
    directory under `root`; returns it and the 12 images (6 of them the validation set)."""
    from visiontrain.config import DataConfig, ModelConfig
    from visiontrain.models.registry import build_model

    names = ["a", "b", "c"]
    images = np.random.RandomState(0).randint(0, 256, (12, 20, 24, 3)).astype(np.uint8)
    labels = np.arange(12) % 3
    data_dir = os.path.join(str(root), "shards")
    write_dataset(data_dir, (images, labels), (images[:6], labels[:6]), names)
    data = DataConfig(data_dir=data_dir, image_size=16, eval_crop_fraction=1.0)
    model_config = ModelConfig(name=model_name, num_classes=len(names))
    run_dir = os.path.join(str(root), "run")
    save_run(run_dir, build_model(model_config, 16), model_config, data, names,
             {"weights": weights, "validation": {"accuracy": 0.5}})
    return run_dir, images


def checked_export_report(path: str) -> dict:
    """The export report of version `path`, asserting the gates every export passes: no
    Python ops, TF-only reload within 1e-5, every signature's warmup replayed, and
    int8 TFLite calibrated on some images."""
    import json

    from visiontrain.serving import export, verify_export

    report = json.load(open(os.path.join(path, export.REPORT)))
    assert report["python_ops"] == [] and verify_export.forbidden_ops(path) == []
    assert max(max(v.values()) for v in report["tf_only_process_max_abs_diff"].values()) <= 1e-5
    assert report["warmup_signatures_replayed"] == [
        "serving_default", "predict_images", "predict_tf_example"]
    assert report["tflite"]["calibration_images"] > 0
    return report
