"""What one input pipeline reads in one epoch: its share of the files, the epoch's seed,
file order and dropped remainder.

Pure functions of (seed, epoch, input pipeline) and the files' record counts, so every
worker, and every restart, agrees on them without talking to the others. The seeded
parts are TF ops: the training dataset computes them in its graph, epoch by epoch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from visiontrain.pipelines.record_sources import RecordFile


@dataclasses.dataclass(frozen=True)
class PipelineShare:
    """What one input pipeline reads: its files and how it shards them."""

    files: tuple[RecordFile, ...]
    # "file": this pipeline owns whole files; "record": every pipeline reads every
    # file in the same order and keeps every num_pipelines-th record.
    policy: str
    num_records: int
    num_pipelines: int
    pipeline_id: int


def pipeline_share(
    files: Sequence[RecordFile], num_pipelines: int, pipeline_id: int
) -> PipelineShare:
    """Assigns a split's files to one of `num_pipelines` input pipelines.

    Files are dealt round-robin when there are at least as many files as pipelines
    (each worker then reads only its own files); otherwise every pipeline reads all
    files and keeps a disjoint, strided subset of records.
    """
    if len(files) >= num_pipelines:
        mine = tuple(files[pipeline_id::num_pipelines])
        return PipelineShare(mine, "file", sum(f.records for f in mine), num_pipelines,
                             pipeline_id)
    total = sum(f.records for f in files)
    # Pipeline p keeps records p, p + P, p + 2P, ... of the fixed file order.
    return PipelineShare(tuple(files), "record", len(range(pipeline_id, total, num_pipelines)),
                         num_pipelines, pipeline_id)


def steps_per_epoch(
    files: Sequence[RecordFile], global_batch_size: int, num_pipelines: int = 1
) -> int:
    """Training steps in one epoch, from the files' record counts.

    Every pipeline must run the same number of steps (collectives would hang
    otherwise), so the pipeline with the fewest records sets the pace.
    """
    per_pipeline_batch = global_batch_size // num_pipelines
    fewest = min(
        pipeline_share(files, num_pipelines, p).num_records for p in range(num_pipelines)
    )
    steps = fewest // per_pipeline_batch
    if steps < 1:
        raise ValueError(
            f"An epoch of {fewest} records per input pipeline is smaller than one batch of "
            f"{per_pipeline_batch}; lower --global_batch_size."
        )
    return steps


def epoch_seed(seed: int, epoch: int | tf.Tensor, pipeline_id: int) -> tf.Tensor:
    """The seed of one epoch of one input pipeline: its file order, remainder, shuffle, crops.

    An int64 scalar in [0, 2**31 - 1), the same eagerly and inside a dataset's graph.
    """
    key = tf.random.experimental.stateless_fold_in(
        tf.constant([seed, pipeline_id], tf.int64), tf.cast(epoch, tf.int64))
    return tf.random.stateless_uniform([], key, minval=0, maxval=2**31 - 1, dtype=tf.int64)


def permutation(size: int, seed: tf.Tensor, stream: int) -> tf.Tensor:
    """A seeded permutation of range(size); `stream` keeps draws from one seed independent."""
    return tf.argsort(tf.random.stateless_uniform([size], tf.stack([seed, stream])))


def distinct_records(records_per_epoch: int, aug_repeats: int) -> int:
    """Distinct records an epoch reads with repeated augmentation (DeiT's RASampler).

    An epoch keeps its length: `records_per_epoch` reads, of ceil(records_per_epoch /
    aug_repeats) distinct records, each read `aug_repeats` times; the last copies of the
    shuffled stream that overflow the epoch (fewer than `aug_repeats`) are not read.
    """
    return -(-records_per_epoch // aug_repeats)


def check_records_per_epoch(num_records: int, records_per_epoch: int) -> None:
    """Refuses an epoch longer than the pipeline's share.

    Raises:
      ValueError: `records_per_epoch` exceeds `num_records`.
    """
    if records_per_epoch > num_records:
        raise ValueError(
            f"records_per_epoch={records_per_epoch} exceeds the {num_records} records of this "
            "input pipeline; compute it with steps_per_epoch."
        )


def remainder_mask(
    num_records: int, records_per_epoch: int, seed: int | tf.Tensor
) -> tf.Tensor:
    """Which of a pipeline's records (by position in its read order) this epoch keeps.

    Exactly `records_per_epoch` True entries (bool [num_records]) at positions drawn
    anew for every seed; eager or inside a dataset's graph.
    """
    check_records_per_epoch(num_records, records_per_epoch)
    kept = permutation(num_records, tf.cast(seed, tf.int64), 1)[:records_per_epoch]
    return tf.scatter_nd(kept[:, None], tf.ones([records_per_epoch], tf.bool), [num_records])
