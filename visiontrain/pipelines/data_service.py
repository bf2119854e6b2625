"""Host preprocessing on a tf.data service cluster (`--tf_data_service=grpc://HOST:PORT`).

How an epoch stays exact on the service:

* Sharding is `ShardingPolicy.DYNAMIC`: the dispatcher hands the epoch's files to the
  service workers one split at a time, so every file, hence every record, is read by
  exactly one worker. Whatever must be global over the epoch (the dropped remainder,
  the pipeline's record stride, the crop seed) is decided per record from its fixed
  index in the pipeline's share, never from its position in a worker's stream
  (`take`, `skip` and `enumerate` would apply per worker under DYNAMIC sharding).
* Workers batch without dropping their partial last batch; the consumer rebatches,
  so the epoch's `records_per_epoch` records make exactly `steps_per_epoch` full
  batches whatever the split between workers.
* The consumer repeats the job and takes its batch count: DYNAMIC sharding is
  at-most-once when a service worker dies (its splits in flight are lost), and the
  repeat then starts a fresh iteration of the job to fill the missing batches, so a
  step count is never short (those few records are then seen twice in the epoch).
* Every dataset gets its own job name. Two datasets with one job name share the job:
  a restarted run would join the finished job of its previous life and get nothing
  (measured on TF 2.21), so the name carries a random token besides its
  (epoch, pipeline, start record).

Resuming mid-epoch is exact in steps but not in records: the order across service
workers is not deterministic, so which records the finished steps consumed is
unknown. The resumed epoch takes the remaining batch count from a fresh pass over
the epoch's records.
"""

from __future__ import annotations

import functools
import logging
import socket
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from visiontrain.config import parse_address
from visiontrain.pipelines.record_sources import RecordFile

AUTOTUNE = tf.data.AUTOTUNE


def check_dispatcher(address: str, timeout_s: float = 10.0) -> None:
    """Fails fast when nothing listens at the dispatcher address.

    tf.data retries an unreachable dispatcher for as long as an hour, which looks like
    a hung training job; a TCP connect with a timeout says what is wrong instead.

    Raises:
      ValueError: the address is malformed, or no server accepts a connection there.
    """
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as error:
        raise ValueError(
            f"No tf.data service dispatcher answers at --tf_data_service={address} "
            f"({error}; waited up to {timeout_s:g} s). Start the dispatcher (tf.data.experimental."
            "service.DispatchServer) and its workers, or drop the flag to preprocess locally."
        ) from None


def job_name(epoch: int, pipeline_id: int, start_record: int) -> str:
    """A job name no other dataset uses: consumers of this dataset share its job."""
    return f"visiontrain-e{epoch}-p{pipeline_id}-r{start_record}-{uuid.uuid4().hex[:12]}"


def share_offsets(files: Sequence[RecordFile]) -> tuple[np.ndarray, np.ndarray]:
    """Each file's first record index and record count, in the order of `files`."""
    counts = np.array([f.records for f in files], dtype=np.int64)
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64), counts


def indexed_records(
    files: Sequence[RecordFile],
    read: Callable[[tf.Tensor], tf.data.Dataset],
    file_order: np.ndarray | tf.Tensor,
    keep: np.ndarray | tf.Tensor,
    stride: int = 1,
    phase: int = 0,
) -> tf.data.Dataset:
    """(index in the share, record) of the kept records; splittable by file.

    A record's index in `files` (in their given order) is g; the pipeline owns the
    records with g % stride == phase, as index (g - phase) // stride, and keeps those
    whose `keep` entry is True. The files are read in `file_order` with `read` (a
    `RecordSource.read`), but indices depend neither on that order nor on which
    service worker reads which file.
    """
    offsets, counts = share_offsets(files)
    # The trailing False drops any record past the files' counts.
    keep_table = tf.concat([tf.convert_to_tensor(keep, tf.bool), [False]], axis=0)
    last = len(keep)
    sources = tf.data.Dataset.from_tensor_slices(tuple(
        tf.gather(column, file_order)
        for column in ([f.path for f in files], offsets, counts)
    ))

    def read_indexed(path, offset, count):
        return read(path).enumerate().map(
            lambda i, record: (offset + i, i < count, record)
        )

    def kept(index, in_files, _):
        mine = tf.equal(tf.math.floormod(index - phase, stride), 0)
        position = tf.clip_by_value(tf.math.floordiv(index - phase, stride), 0, last)
        return in_files & mine & tf.gather(keep_table, position)

    records = sources.interleave(
        read_indexed, cycle_length=max(1, min(len(files), 8)), num_parallel_calls=AUTOTUNE
    )
    return records.filter(kept).map(
        lambda index, _, record: (tf.math.floordiv(index - phase, stride), record)
    )


@functools.lru_cache(maxsize=None)
def warn_inexact_resume() -> None:
    """Logs once per process that a mid-epoch resume on the service is exact in steps only."""
    logging.warning(
        "Resuming mid-epoch on the tf.data service: the remaining steps of this epoch are "
        "exact in number, but the order across service workers is not deterministic, so "
        "they draw from all of the epoch's records (some twice, some not at all)."
    )


def serve_epoch(
    records: tf.data.Dataset,
    parse: Callable[..., Any],
    *,
    address: str,
    name: str,
    batch_size: int,
    num_batches: int,
    shuffle_buffer: int,
    seed: int,
    options: tf.data.Options,
) -> tf.data.Dataset:
    """`num_batches` full batches of `parse(index, record)`, preprocessed on the service.

    Args:
      records: (index, record) pairs from `indexed_records`.
      parse: the per-record preprocessing, run on the service workers.
      address: the dispatcher, grpc://HOST:PORT.
      name: the job name (see `job_name`).
      batch_size: records per consumer batch.
      num_batches: batches the consumer gets, exactly.
      shuffle_buffer: each service worker's record shuffle buffer.
      seed: the shuffle seed.
      options: tf.data options for both the worker and the consumer side.

    Returns:
      A dataset of exactly `num_batches` batches of `batch_size` records.
    """
    parse_address(address)
    served = (
        records.shuffle(shuffle_buffer, seed=seed)
        .map(parse, num_parallel_calls=AUTOTUNE)
        # Batching on the worker amortises the per-element RPC; the partial last batch
        # of each worker is kept so that the consumer's rebatch loses nothing.
        .batch(batch_size, drop_remainder=False)
        .with_options(options)
        .apply(
            tf.data.experimental.service.distribute(
                processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
                service=address,
                job_name=name,
            )
        )
    )
    return (
        served.repeat()
        .rebatch(batch_size, drop_remainder=True)
        .take(num_batches)
        .with_options(options)
    )
