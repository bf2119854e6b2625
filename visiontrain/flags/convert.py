"""Flags of `visiontrain-data build`, converted once into a frozen ConvertConfig."""

from __future__ import annotations

from absl import flags

from visiontrain.config import ConvertConfig

_SOURCE = flags.DEFINE_string(
    "source", None, "Class-per-folder image tree (optionally with train/ and val/ or "
    "validation/ sub-trees), or tfds:NAME[/CONFIG] for a prepared TFDS dataset.")
_OUTPUT = flags.DEFINE_string("output", None, "Directory for shards, labels.json, manifest.json.")
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", "", "TFDS data_dir for tfds: sources.")
_VAL_FRACTION = flags.DEFINE_float(
    "val_fraction", 0.1, "Per-class fraction held out for validation when the source has "
    "no validation split.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the split and of the shuffle before sharding.")
_SHARD_SIZE_MB = flags.DEFINE_float(
    "shard_size_mb", 150.0, "Target shard size; raised to 8 shards per split when each still "
    "holds >= 64 records. Ignored when --num_shards is set.")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 0, "Fixed shard count per split; 0 = by size.")
_MAX_PIXELS = flags.DEFINE_integer(
    "max_pixels", 50_000_000, "Reject images whose header says height*width is larger.")
_MAX_SIDE = flags.DEFINE_integer("max_side", 0, "Downscale the longer side to this; 0 = keep.")
_JPEG_QUALITY = flags.DEFINE_integer("jpeg_quality", 95, "Quality of re-encoded JPEGs.")
_KEEP_PNG = flags.DEFINE_bool("keep_png", False, "Store non-JPEG sources as PNG, not JPEG.")
_STRICT = flags.DEFINE_bool("strict", False, "Fail the build if any file is rejected.")
_DEDUPE = flags.DEFINE_bool(
    "dedupe", False, "Drop duplicate images (keeps the first in sorted order; a train copy "
    "of a validation image is dropped).")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 0, "Encoding processes; 0 = all cores.")

flags.register_validator(
    "val_fraction", lambda v: 0.0 < v < 1.0,
    "--val_fraction must be in (0, 1), e.g. 0.1")
flags.register_validator(
    "shard_size_mb", lambda v: v > 0, "--shard_size_mb must be > 0, e.g. 150")
flags.register_validator("num_shards", lambda v: v >= 0, "--num_shards must be >= 0 (0 = by size)")
flags.register_validator("max_pixels", lambda v: v > 0, "--max_pixels must be > 0, e.g. 50000000")
flags.register_validator("max_side", lambda v: v >= 0, "--max_side must be >= 0 (0 = keep size)")
flags.register_validator(
    "jpeg_quality", lambda v: 1 <= v <= 100, "--jpeg_quality must be in [1, 100], e.g. 95")
flags.register_validator("num_workers", lambda v: v >= 0, "--num_workers must be >= 0 (0 = all)")


def convert_config_from_flags() -> ConvertConfig:
    """The parsed flags as a ConvertConfig; --source and --output are required here."""
    missing = [f"--{n}" for n, f in (("source", _SOURCE), ("output", _OUTPUT)) if not f.value]
    if missing:
        raise ValueError(f"visiontrain-data build needs {' and '.join(missing)}")
    return ConvertConfig(
        source=_SOURCE.value, output=_OUTPUT.value, tfds_data_dir=_TFDS_DATA_DIR.value,
        val_fraction=_VAL_FRACTION.value, seed=_SEED.value, shard_size_mb=_SHARD_SIZE_MB.value,
        num_shards=_NUM_SHARDS.value, max_pixels=_MAX_PIXELS.value, max_side=_MAX_SIDE.value,
        jpeg_quality=_JPEG_QUALITY.value, keep_png=_KEEP_PNG.value, strict=_STRICT.value,
        dedupe=_DEDUPE.value, num_workers=_NUM_WORKERS.value,
    )
