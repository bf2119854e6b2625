"""ConvertConfig: what `visiontrain-data build` reads and how it writes shards."""

from __future__ import annotations

import dataclasses

from visiontrain.config.paths import absolute_paths
from visiontrain.config.schema import Section

SOURCE = Section("source", "What `visiontrain-data build` reads, and how it splits it")
SHARDS = Section("shards", "How the shards are cut")
IMAGES = Section("images", "How images are checked and stored")


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    """Everything `build` needs (no resume groups: shards are not a training run)."""

    source: str = SOURCE(help="Class-per-folder image tree (optionally with train/ and val/ "
                         "or validation/ sub-trees), a label file (LABELS.csv with a header "
                         "path,label[,split] or path,labels; LABELS.jsonl), or "
                         "tfds:NAME[/CONFIG] for a prepared TFDS dataset.", path=True)
    output: str = SOURCE(help="Directory for shards, labels.json, manifest.json.", path=True)
    tfds_data_dir: str = SOURCE("", help="TFDS data_dir for tfds: sources.", path=True)
    val_fraction: float = SOURCE(0.1, help="Per-class fraction held out for validation when "
                                 "the source has no validation split.", above=0.0, below=1.0)
    seed: int = SOURCE(0, help="Seed of the split and of the shuffle before sharding.")
    shard_size_mb: float = SHARDS(150.0, help="Target shard size; raised to 8 shards per "
                                  "split when each still holds >= 64 records. Ignored when "
                                  "--num_shards is set.", above=0.0)
    num_shards: int = SHARDS(0, help="Fixed shard count per split; 0 = by size.", min=0)
    max_pixels: int = IMAGES(50_000_000, help="Reject images whose header says height*width "
                             "is larger.", above=0)
    max_side: int = IMAGES(0, help="Downscale the longer side to this; 0 = keep.", min=0)
    jpeg_quality: int = IMAGES(95, help="Quality of re-encoded JPEGs.", min=1, max=100)
    # On: training sees the served file's pixels; off re-encodes non-JPEG sources as JPEG.
    keep_png: bool = IMAGES(True, help="Store PNG sources as they are and GIF/BMP as PNG, so "
                            "training sees the served file's pixels. --nokeep_png re-encodes "
                            "them as JPEG: shards ~40% smaller on photos, pixels ~2 levels off "
                            "what is served.")
    strict: bool = SOURCE(False, help="Fail the build if any file is rejected; nothing is "
                          "written.")
    dedupe: bool = SOURCE(False, help="Drop duplicate images (keeps the first in sorted order; "
                          "a train copy of a validation image is dropped).")
    # Off: a class without training images would be a head output that never trained.
    allow_untrained_classes: bool = SOURCE(False, help="Build even when a class has no "
                                           "training images (e.g. only val/CLASS); the "
                                           "manifest lists them as untrained_classes.")
    num_workers: int = SHARDS(0, help="Encoding processes; 0 = all cores.", min=0)

    def __post_init__(self):
        absolute_paths(self)
