"""`--sampling=balanced`: a seeded class-balanced record stream for the training reader.

One input pipeline's share of the records is read pass after pass, each pass in its
own seeded order, and a record of class c is kept with probability
min_count / count_c (count_c: the class's training records, from the manifest), so
every class is kept at the same expected rate and the delivered classes are uniform.
Nothing but the seed, the epoch and the pipeline decides a keep: the coin of the
i-th record of the stream is stateless_uniform([seed, i]).

An epoch is still `records_per_epoch` records (steps x batch, as without balancing),
taken from the head of this stream; the next epoch starts a new stream from its own
seed. A resumed epoch skips its first `start_record` kept records before decoding, so
a resumed run trains on exactly the records an uninterrupted one would.

What exactly-once means here: not "every record once per epoch" (rare records repeat,
common ones are left out, by design) but "every position of the epoch's seeded stream
once": each of the epoch's records_per_epoch draws is trained on exactly once, across
any number of restarts, and the draws are the same however the run is interrupted.

Every class is filtered out of one shared pass (no per-class re-reads): a pass keeps
about C * min_count records, so an epoch reads records_per_epoch / (C * min_count)
passes of the share, about the imbalance ratio for a 10:1 set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

# Stream numbers of the seeded draws, apart from the other streams of an epoch seed.
_ORDER_STREAM, _KEEP_STREAM = 11, 12
# Passes a stream may make; far more than any epoch needs, and finite.
_MAX_PASSES = 1 << 20


def keep_probabilities(class_counts: Sequence[int]) -> list[float]:
    """Per class, min_count / count (a class without records: 0, it cannot be drawn).

    Raises:
      ValueError: no class has a record.
    """
    present = [n for n in class_counts if n > 0]
    if not present:
        raise ValueError("--sampling=balanced: the training split has no records.")
    least = min(present)
    return [least / n if n > 0 else 0.0 for n in class_counts]


def balanced_stream(
    read_pass: Callable[[tf.Tensor], tf.data.Dataset],
    label_of: Callable[[dict], tf.Tensor],
    class_counts: Sequence[int],
    seed: tf.Tensor,
) -> tf.data.Dataset:
    """The endless class-balanced stream of one epoch.

    Args:
      read_pass: pass number -> this pipeline's records in that pass's seeded order.
      label_of: a record's int32 class index.
      class_counts: training records per class (the manifest's class_counts).
      seed: the epoch's seed.
    """
    keep = tf.constant(keep_probabilities(class_counts), tf.float32)

    def kept(index, record):
        coin = tf.random.stateless_uniform(
            [], tf.stack([seed, tf.constant(_KEEP_STREAM, tf.int64) * (1 << 40) + index]))
        return coin < tf.gather(keep, label_of(record))

    passes = tf.data.Dataset.range(_MAX_PASSES).flat_map(read_pass)
    return passes.enumerate().filter(kept).map(lambda index, record: record)


def pass_seed(seed: tf.Tensor, number: tf.Tensor) -> tf.Tensor:
    """The seed of one pass's order, a function of the epoch seed and the pass number."""
    return tf.random.stateless_uniform(
        [], tf.stack([seed, tf.constant(_ORDER_STREAM, tf.int64) * (1 << 40) + number]),
        minval=0, maxval=2**31 - 1, dtype=tf.int64)
