"""A damaged shard met while training, named: which file, which offset, what to run.

tf.data's `DataLossError` ("corrupted record at 17891") names no file: the training
input interleaves every shard. The pre-flight check compares sizes (and sha256 only
with --verify_sha256), so bit rot inside a record of the right size gets this far.
On that error we read the shards' record checksums one file at a time until one
fails; that file is the one to rebuild or restore.
"""

from __future__ import annotations

import logging
import os
import re

import tensorflow as tf

from visiontrain.config import DataConfig
from visiontrain.pipelines import manifest as manifest_lib
from visiontrain.pipelines import tfds_reader


class DamagedShard(ValueError):
    """A user error: the data is damaged, the fix is in the data (exit code 2)."""


def _offset(message: str) -> str | None:
    match = re.search(r"corrupted record at (\d+)", message)
    return match.group(1) if match else None


def find_damaged_shard(data_dir: str, offset: str | None) -> tuple[str, str | None] | None:
    """(path, offset) of the first shard whose records fail their checksum, else None.

    A shard failing at `offset` is preferred when several are damaged.
    """
    loaded = manifest_lib.load_manifest(data_dir)
    found = None
    for split in loaded["splits"]:
        for shard in loaded["splits"][split]["shards"]:
            path = os.path.join(data_dir, shard["file"])
            try:
                for _ in tf.data.TFRecordDataset(path):
                    pass
            except tf.errors.DataLossError as err:
                at = _offset(err.message)
                if at == offset:
                    return path, at
                found = found or (path, at)
    return found


def damaged_shard_error(err: tf.errors.DataLossError, data: DataConfig) -> DamagedShard:
    """The one-line user error for a `DataLossError` raised by the training input."""
    first = err.message.strip().splitlines()[0] if err.message.strip() else "data loss"
    offset = _offset(err.message)
    if tfds_reader.tfds_spec(data.data_dir):
        return DamagedShard(
            f"A record of {data.data_dir} is damaged ({first}); prepare the TFDS dataset "
            "again, e.g. delete its directory under --tfds_data_dir and re-download it.")
    logging.info("Reading every shard's checksums to find the damaged one...")
    located = find_damaged_shard(data.data_dir, offset)
    where = (f"shard {located[0]} is damaged at byte offset {located[1] or offset or '?'}"
             if located else f"a shard in {data.data_dir} is damaged ({first})")
    return DamagedShard(
        f"Training stopped: {where}. Check every shard with `visiontrain-data verify "
        f"{data.data_dir}`, then rebuild the data (visiontrain-data build) or restore the "
        "shard from a copy; rerun the same command to resume from the last checkpoint.")
