"""Typed, frozen configuration passed from the tools down to the library.

The absl flags in `visiontrain.flags` are converted into these dataclasses once,
at the edge; library code takes them (or plain arguments) and never reads FLAGS,
so everything here is usable from Python and testable without absl.
"""

from __future__ import annotations

import dataclasses
import json
import os
import urllib.parse
from typing import Any

# Marks a field that names a file or directory. Such fields are stored absolute: a
# config written to a run's records must mean the same file from any working directory.
_PATH = {"path": True}
_NOT_PATHS = ("", "imagenet", "balanced")
# --pretrained=hub:PRESET loads a keras-hub preset (models/hub.py).
HUB_PREFIX = "hub:"


def _path_field(default: Any = dataclasses.MISSING) -> Any:
    return dataclasses.field(default=default, metadata=_PATH)


def absolute_path(value: str) -> str:
    """`value` made absolute if it is a local path; '' (unset), 'imagenet', 'balanced'
    (--class_weights), 'tfds:NAME' and URLs such as gs://bucket/dir are kept as they are.
    'hub:X' (a keras-hub preset) keeps a preset name as it is and makes a directory
    absolute."""
    if value.startswith(HUB_PREFIX):
        preset = value[len(HUB_PREFIX):]
        return HUB_PREFIX + (absolute_path(preset) if is_local_preset(preset) else preset)
    if value in _NOT_PATHS or value.startswith("tfds:") or "://" in value:
        return value
    return os.path.abspath(value)


def is_local_preset(preset: str) -> bool:
    """Whether a keras-hub preset (the X of 'hub:X') names a local directory.

    Preset names ("vit_base_patch16_224_imagenet") have no path separator and URIs
    ("kaggle://...", "hf://...") have a scheme; anything else is a directory.
    """
    if "://" in preset:
        return False
    return os.sep in preset or preset.startswith(".") or os.path.isdir(preset)


def is_path_field(field: dataclasses.Field) -> bool:
    return bool(field.metadata.get("path"))


def absolute_paths(config: Any) -> None:
    """Rewrites the path fields of a frozen config in place (from __post_init__) as absolute."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if is_path_field(field) and isinstance(value, str):
            object.__setattr__(config, field.name, absolute_path(value))


def parse_address(address: str) -> tuple[str, int]:
    """(host, port) of a `grpc://HOST:PORT` tf.data service dispatcher address.

    Raises:
      ValueError: the address is not of that form.
    """
    how = f"--tf_data_service={address!r} is not a dispatcher address; use grpc://HOST:PORT"
    parts = urllib.parse.urlsplit(address)
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"{how} with a port in [1, 65535] ({error}).") from None
    if parts.scheme != "grpc" or not parts.hostname or not port or parts.path or parts.query:
        raise ValueError(f"{how}, e.g. grpc://dispatcher.example.com:5050.")
    return parts.hostname, port


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    """Everything `build` needs; see visiontrain/flags/convert.py for the meaning."""

    source: str = _path_field()
    output: str = _path_field()
    tfds_data_dir: str = _path_field("")
    val_fraction: float = 0.1
    seed: int = 0
    shard_size_mb: float = 150.0
    num_shards: int = 0
    max_pixels: int = 50_000_000
    max_side: int = 0
    jpeg_quality: int = 95
    # On: training sees the served file's pixels; off re-encodes non-JPEG sources as JPEG.
    keep_png: bool = True
    strict: bool = False
    dedupe: bool = False
    # Off: a class without training images would be a head output that never trained.
    allow_untrained_classes: bool = False
    num_workers: int = 0

    def __post_init__(self):
        absolute_paths(self)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the shards are and how batches are made from them."""

    data_dir: str = _path_field()
    image_size: int = 224
    global_batch_size: int = 128
    # Random-resized-crop ranges, the Inception/timm defaults.
    crop_area_min: float = 0.08
    crop_area_max: float = 1.0
    aspect_ratio_min: float = 3 / 4
    aspect_ratio_max: float = 4 / 3
    # 0.875 is the classic ImageNet center-crop fraction (224 of 256).
    eval_crop_fraction: float = 0.875
    shuffle_buffer: int = 2048
    # "balanced": every training class drawn equally often (single-label; see
    # pipelines/balanced.py); "none": every record once per epoch.
    sampling: str = "none"
    # Repeated augmentation (DeiT): an epoch reads 1/N as many distinct records, N times each.
    aug_repeats: int = 1
    # Model Garden pins a bounded prefetch: autotuned prefetch has caused OOMs.
    prefetch_batches: int = 4
    cache_eval: bool = True
    deterministic: bool = False
    threadpool_size: int = 0
    verify_sha256: bool = False
    tf_data_service: str = ""
    seed: int = 0
    # Where TFDS datasets are prepared, for data_dir="tfds:NAME[/CONFIG]".
    tfds_data_dir: str = _path_field("")

    def __post_init__(self):
        absolute_paths(self)
        if self.tf_data_service:
            parse_address(self.tf_data_service)
            if self.aug_repeats > 1:
                raise ValueError(
                    f"--aug_repeats={self.aug_repeats} is not built for --tf_data_service; "
                    "drop one of the two.")
        if self.aug_repeats > 1 and self.sampling != "none":
            # The balanced stream draws its own repeats of the rare classes' records.
            raise ValueError(
                f"--aug_repeats={self.aug_repeats} is not built for --sampling="
                f"{self.sampling}; drop one of the two.")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which network to build; the class count comes from the data's label map."""

    name: str = "resnet50"
    num_classes: int = 0
    dropout: float = 0.0
    # Stochastic depth of the deepest ResNet block, linear in depth from 0 (0: off).
    drop_path: float = 0.0
    zero_init_residual: bool = True
    sync_bn: bool = False
    pretrained: str = _path_field("")

    def __post_init__(self):
        absolute_paths(self)


# Which checkpoints --average_checkpoints averages: the newest, or the best by accuracy.
AVERAGE_SOURCES = ("last", "best")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, schedule, checkpointing and logging of one training run."""

    run_dir: str = _path_field()
    epochs: int = 10
    optimizer: str = "sgd"
    # The optimizer steps once per this many micro-batches of global_batch_size images
    # (timm's --grad-accum-steps): a step trains on grad_accum_steps * global_batch_size.
    grad_accum_steps: int = 1
    base_lr: float = 0.1
    # Goyal et al.: LR = base_lr * global_batch / 256.
    scale_lr: bool = True
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-5
    warmup_epochs: float = 0.0
    schedule: str = "cosine"
    step_decay_epochs: tuple[int, ...] = ()
    step_decay_rate: float = 0.1
    label_smoothing: float = 0.0
    # "softmax" cross-entropy or per-class sigmoid "bce" (see training/losses.py); "auto"
    # picks softmax for single-label data, bce for multi-label.
    loss: str = "auto"
    # '' (none), "balanced" (inverse class frequency) or a JSON file {label: weight}.
    class_weights: str = _path_field("")
    clip_norm: float = 0.0
    ema_decay: float = 0.0
    eval_every: int = 1
    # Stop when validation accuracy has not improved for this many epochs (0: never).
    early_stop_patience: int = 0
    steps_per_loop: int = 10
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 3
    # At the end, evaluate and save the mean of N checkpoints (0: off), the last N or
    # the best N by validation accuracy.
    average_checkpoints: int = 0
    average_of: str = "last"  # one of AVERAGE_SOURCES
    dtype: str = "float32"
    jit_compile: bool = False
    deterministic: bool = False
    seed: int = 0
    augment: str = ""
    max_nan_retries: int = 2
    freeze_epochs: int = 0
    unfreeze: str = "all"
    fine_tune_lr: float = 0.0
    freeze_bn: bool = False
    layer_decay: float = 0.0
    fine_tune_warmup_epochs: float = 0.0
    profile_steps: tuple[int, ...] = ()
    # Seconds between progress lines in the log (0: at every step boundary).
    progress_every_s: float = 10.0
    # Where this worker saves its final weights (.weights.h5): lets a multi-worker job
    # check that every worker ended with the same weights.
    final_weights: str = _path_field("")

    def __post_init__(self):
        absolute_paths(self)
        steps = self.profile_steps
        if steps and (len(steps) != 2 or not 0 <= steps[0] < steps[1]):
            raise ValueError(
                f"--profile_steps={','.join(map(str, steps))}: expected two step numbers A,B "
                "with 0 <= A < B, e.g. 10,20."
            )


@dataclasses.dataclass(frozen=True)
class DistributionConfig:
    """How replicas and workers are laid out."""

    strategy: str = "auto"
    cpu_replicas: int = 1
    worker_hosts: tuple[str, ...] = ()
    task_index: int = 0
    tpu: str = ""
    collective_timeout_s: int = 60


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Where and how a trained run becomes a versioned SavedModel."""

    run_dir: str = _path_field()
    export_dir: str = _path_field()
    version: str = "auto"
    top_k: int = 5
    max_pixels: int = 50_000_000
    tflite: str = ""
    onnx: bool = False
    calibrate: bool = False
    abstain: str = ""
    abstain_target: float = 0.99
    unknown_data_dir: str = _path_field("")
    # "newest": the newest checkpoint (EMA weights when they evaluated better);
    # "averaged": the checkpoint mean of --average_checkpoints.
    weights: str = "newest"
    # The preprocessing baked into the signatures; 0 takes the run's image_size and
    # eval_crop_fraction.
    eval_image_size: int = 0
    eval_crop_fraction: float = 0.0

    def __post_init__(self):
        absolute_paths(self)
        if self.abstain not in ("", "auto"):
            try:
                threshold = float(self.abstain)
            except ValueError:
                threshold = -1.0
            if not 0.0 < threshold < 1.0:
                raise ValueError(f"--abstain={self.abstain!r}: pass 'auto' or a probability "
                                 "strictly between 0 and 1, e.g. --abstain=0.6.")
        if not 0.0 < self.abstain_target <= 1.0:
            raise ValueError(f"--abstain_target={self.abstain_target}: pass an accuracy in "
                             "(0, 1], e.g. 0.99.")
        if self.unknown_data_dir and not self.abstain:
            raise ValueError("--unknown_data_dir measures abstention; pass --abstain too.")


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) config dataclass."""
    return dataclasses.asdict(config)


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuilds a config dataclass from `to_dict` output; unknown keys are errors."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} keys {unknown}; known: {sorted(names)}")
    kwargs = {}
    for key, value in values.items():
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def dumps(config: Any) -> str:
    """Serialises a config dataclass to stable, human-readable JSON."""
    return json.dumps(to_dict(config), indent=2, sort_keys=True)
