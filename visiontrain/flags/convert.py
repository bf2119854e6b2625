"""Flags of `visiontrain-data`: `build` fills a ConvertConfig, `inspect` draws a grid."""

from __future__ import annotations

from absl import flags

from visiontrain.config import ConvertConfig
from visiontrain.flags.defaults import Definer


def define_convert_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """`visiontrain-data build` (--source and --output are required there only)."""
    define = Definer(ConvertConfig, fv, __name__)
    define("string", "source", "Class-per-folder image tree (optionally with train/ and "
           "val/ or validation/ sub-trees), or tfds:NAME[/CONFIG] for a prepared TFDS dataset.")
    define("string", "output", "Directory for shards, labels.json, manifest.json.")
    define("string", "tfds_data_dir", "TFDS data_dir for tfds: sources.")
    define("float", "val_fraction", "Per-class fraction held out for validation when the "
           "source has no validation split.")
    define("integer", "seed", "Seed of the split and of the shuffle before sharding.")
    define("float", "shard_size_mb", "Target shard size; raised to 8 shards per split when "
           "each still holds >= 64 records. Ignored when --num_shards is set.")
    define("integer", "num_shards", "Fixed shard count per split; 0 = by size.")
    define("integer", "max_pixels", "Reject images whose header says height*width is larger.")
    define("integer", "max_side", "Downscale the longer side to this; 0 = keep.")
    define("integer", "jpeg_quality", "Quality of re-encoded JPEGs.")
    define("bool", "keep_png", "Store PNG sources as they are and GIF/BMP as PNG, so "
           "training sees the served file's pixels. --nokeep_png re-encodes them as JPEG: "
           "shards ~40% smaller on photos, pixels ~2 levels off what is served.")
    define("bool", "strict", "Fail the build if any file is rejected; nothing is written.")
    define("bool", "dedupe", "Drop duplicate images (keeps the first in sorted order; a "
           "train copy of a validation image is dropped).")
    define("bool", "allow_untrained_classes", "Build even when a class has no training "
           "images (e.g. only val/CLASS); the manifest lists them as untrained_classes.")
    define("integer", "num_workers", "Encoding processes; 0 = all cores.")
    for name, check, message in (
        ("val_fraction", lambda v: 0.0 < v < 1.0, "--val_fraction must be in (0, 1), e.g. 0.1"),
        ("shard_size_mb", lambda v: v > 0, "--shard_size_mb must be > 0, e.g. 150"),
        ("num_shards", lambda v: v >= 0, "--num_shards must be >= 0 (0 = by size)"),
        ("max_pixels", lambda v: v > 0, "--max_pixels must be > 0, e.g. 50000000"),
        ("max_side", lambda v: v >= 0, "--max_side must be >= 0 (0 = keep size)"),
        ("jpeg_quality", lambda v: 1 <= v <= 100, "--jpeg_quality must be in [1, 100], e.g. 95"),
        ("num_workers", lambda v: v >= 0, "--num_workers must be >= 0 (0 = all)"),
    ):
        flags.register_validator(name, check, message, flag_values=fv)


def define_inspect_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """`visiontrain-data inspect DIR`."""
    flags.DEFINE_string("out", "", "inspect: grid PNG path (default DIR/inspect_grid.png).",
                        flag_values=fv)
    flags.DEFINE_integer("samples_per_class", 8, "inspect: images per class in the grid.",
                         lower_bound=1, flag_values=fv)
