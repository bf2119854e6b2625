"""DataConfig: where the shards are and how batches are made from them."""

from __future__ import annotations

import dataclasses
import urllib.parse

from visiontrain.config.paths import absolute_paths
from visiontrain.config.schema import (
    CADENCE,
    EXECUTION,
    NETWORK,
    ORDER,
    PATHS,
    RECIPE,
    Section,
    filled_from,
)

DATA = Section("data", "Where the shards are")
INPUT = Section("input", "How training batches are drawn from the shards")
IMAGE = Section("image", "The model's input size and the crops that make it")

# "balanced": every training class drawn equally often (single-label; see
# pipelines/balanced.py); "none": every record once per epoch.
SAMPLINGS = ("none", "balanced")


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
class DataConfig:
    """Where the shards are and how batches are made from them."""

    data_dir: str = DATA(help="Directory written by `visiontrain-data build`, or "
                         "tfds:NAME[/CONFIG] for a prepared TFDS dataset.",
                         resume=PATHS, path=True)
    image_size: int = IMAGE(224, help="Side of the square model input.", resume=NETWORK, min=8)
    global_batch_size: int = INPUT(128, help="Batch over all replicas.", resume=ORDER, min=1)
    # Random-resized-crop ranges, the Inception/timm defaults.
    crop_area_min: float = IMAGE(0.08, help="Random-resized-crop min area.", resume=RECIPE,
                                 min=0.01, max=1.0)
    crop_area_max: float = IMAGE(1.0, help="Random-resized-crop max area.", resume=RECIPE,
                                 min=0.01, max=1.0)
    aspect_ratio_min: float = IMAGE(3 / 4, help="Random crop min aspect ratio.", resume=RECIPE,
                                    min=0.1, max=10.0)
    aspect_ratio_max: float = IMAGE(4 / 3, help="Random crop max aspect ratio.", resume=RECIPE,
                                    min=0.1, max=10.0)
    # 0.875 is the classic ImageNet center-crop fraction (224 of 256).
    eval_crop_fraction: float = IMAGE(0.875, help="Centre crop fraction for eval and serving.",
                                      resume=CADENCE, min=0.05, max=1.0)
    shuffle_buffer: int = INPUT(2048, help="Record shuffle buffer.", resume=ORDER, min=1)
    sampling: str = INPUT("none", help="none: every training record once per epoch; "
                          "balanced: a seeded class-balanced draw (each class equally often, "
                          "rare records repeat, common ones are subsampled), same epoch "
                          "length.", resume=ORDER, choices=SAMPLINGS)
    # Repeated augmentation (DeiT): an epoch reads 1/N as many distinct records, N times each.
    aug_repeats: int = INPUT(1, help="Repeated augmentation (DeiT): an epoch keeps its length "
                             "but reads 1/N as many distinct images, each N times with its own "
                             "crop and augmentation (1: off).", resume=ORDER, min=1)
    # Model Garden pins a bounded prefetch: autotuned prefetch has caused OOMs.
    prefetch_batches: int = INPUT(4, help="Bounded prefetch (autotune has caused OOMs).",
                                  resume=EXECUTION, min=1)
    cache_eval: bool = INPUT(True, help="Cache the decoded validation images after the first "
                             "evaluation.", resume=EXECUTION, flag=None)
    deterministic: bool = filled_from("deterministic", False)
    threadpool_size: int = INPUT(0, help="tf.data private threadpool size (0: the shared "
                                 "one).", resume=EXECUTION, flag=None)
    verify_sha256: bool = DATA(False, help="Hash every shard in the pre-flight check.",
                               resume=EXECUTION)
    tf_data_service: str = INPUT("", help="grpc://HOST:PORT of a tf.data service dispatcher: "
                                 "training images are decoded, cropped and batched on its "
                                 "workers. '' = in this process.", resume=EXECUTION)
    seed: int = filled_from("seed", 0)
    # Where TFDS datasets are prepared, for data_dir="tfds:NAME[/CONFIG]".
    tfds_data_dir: str = DATA("", help="TFDS data_dir when --data_dir=tfds:NAME[/CONFIG] (read "
                              "directly).", resume=PATHS, path=True)

    def __post_init__(self):
        absolute_paths(self)
        _check_range("crop_area", self.crop_area_min, self.crop_area_max)
        _check_range("aspect_ratio", self.aspect_ratio_min, self.aspect_ratio_max)
        if self.tf_data_service:
            parse_address(self.tf_data_service)
            if self.data_dir.startswith("tfds:"):
                raise ValueError(
                    f"--tf_data_service serves our TFRecord shards only; for --data_dir="
                    f"{self.data_dir} convert it first (visiontrain-data build --source="
                    f"{self.data_dir}) or drop --tf_data_service.")
            if self.aug_repeats > 1:
                raise ValueError(
                    f"--aug_repeats={self.aug_repeats} is not built for --tf_data_service; "
                    "drop one of the two.")
        if self.aug_repeats > 1 and self.sampling != "none":
            # The balanced stream draws its own repeats of the rare classes' records.
            raise ValueError(
                f"--aug_repeats={self.aug_repeats} is not built for --sampling="
                f"{self.sampling}; drop one of the two.")


def _check_range(name: str, low: float, high: float) -> None:
    if low > high:
        raise ValueError(f"--{name}_min={low} exceeds --{name}_max={high}; pass a range with "
                         "min <= max.")
