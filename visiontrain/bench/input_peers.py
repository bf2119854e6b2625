"""Peer input pipelines for `visiontrain-bench input`, each run only when installed.

- dali: NVIDIA DALI's CPU pipeline on our shards (`pip install visiontrain[peers]`):
  TFRecord reader with a 2,048-record shuffle buffer, fused random-crop decode,
  bilinear resize, then the random horizontal flip and the cast to float32 in one
  `crop_mirror_normalize` (DALI's training recipe, as in NVIDIA's ResNet-50 example),
  all on 2 CPU threads. It delivers what `ours_flip` does (a flipped float32 batch in
  [0, 255]), so R_dali compares the two.
"""

from __future__ import annotations

import importlib.util
import os
import struct
from collections.abc import Callable, Iterator

import numpy as np

from visiontrain.pipelines import record_sources, schema


def write_dali_index(path: str, index_path: str) -> None:
    """Writes DALI's TFRecord index ("offset length" per record) for one shard."""
    lines, offset = [], 0
    with open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            # A record is its 8-byte length, a 4-byte CRC, the data, a 4-byte CRC.
            lines.append(f"{offset} {length + 16}\n")
            offset += length + 16
            f.seek(length + 4, os.SEEK_CUR)
    with open(index_path, "w") as f:
        f.writelines(lines)


def dali_batches(
    shards_dir: str, image_size: int, batch: int, epoch: int, epochs: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`epochs` epochs of (float32 [B, S, S, 3] in [0, 255], labels) from DALI's CPU pipeline."""
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali import tfrecord as tfrec

    files = record_sources.ShardSource(shards_dir).files("train")
    indices = []
    for f in files:
        indices.append(f.path + ".dali_idx")
        if not os.path.exists(indices[-1]):
            write_dali_index(f.path, indices[-1])

    # device_id=None: CPU only, no GPU needed or used.
    @pipeline_def(batch_size=batch, num_threads=2, device_id=None, seed=epoch + 1)
    def pipeline():
        inputs = fn.readers.tfrecord(
            path=[f.path for f in files], index_path=indices, random_shuffle=True,
            initial_fill=2048, features={
                schema.ENCODED: tfrec.FixedLenFeature((), tfrec.string, ""),
                schema.LABEL: tfrec.FixedLenFeature([1], tfrec.int64, -1),
            })
        images = fn.decoders.image_random_crop(
            inputs[schema.ENCODED], device="cpu", output_type=types.RGB,
            random_area=[0.08, 1.0], random_aspect_ratio=[3 / 4, 4 / 3])
        # Bilinear without antialiasing, as our resize_uint8.
        images = fn.resize(images, resize_x=image_size, resize_y=image_size,
                           interp_type=types.INTERP_LINEAR, antialias=False)
        # mean 0, std 1: the flip and the cast alone, as the train step's flip.
        images = fn.crop_mirror_normalize(
            images, dtype=types.FLOAT, output_layout="HWC", mean=[0.0], std=[1.0],
            mirror=fn.random.coin_flip())
        return images, inputs[schema.LABEL]

    pipe = pipeline()
    pipe.build()
    per_epoch = sum(f.records for f in files) // batch
    for _ in range(per_epoch * epochs):
        images, labels = pipe.run()
        yield np.asarray(images.as_tensor()), np.asarray(labels.as_tensor())


def available() -> dict[str, Callable[..., Iterator]]:
    """{name: batches(shards_dir, image_size, batch, epoch, epochs)} of the installed peers."""
    peers = {}
    if importlib.util.find_spec("nvidia") and importlib.util.find_spec("nvidia.dali"):
        peers["dali"] = dali_batches
    return peers
