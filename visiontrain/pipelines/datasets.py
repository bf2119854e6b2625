"""The training and evaluation tf.data pipelines, one of each, over any `RecordSource`.

Training reads one epoch per dataset. The epoch's order is a pure function of
(seed, epoch, input pipeline), so a restarted job rebuilds the same order and skips
the records it already consumed *before* decoding them: that is how the data position
survives a restart (distributed iterators cannot be checkpointed).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from visiontrain.config import DataConfig
from visiontrain.pipelines import data_service, preprocess, schema, tfds_reader
from visiontrain.pipelines.record_sources import (
    IMAGE,
    KEY,
    LABEL,
    RecordFile,
    RecordSource,
    ShardSource,
)

AUTOTUNE = tf.data.AUTOTUNE


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


def epoch_seed(seed: int, epoch: int, pipeline_id: int) -> int:
    """The seed of one epoch of one input pipeline: its file order, remainder, shuffle, crops."""
    return int(np.random.SeedSequence([seed, epoch, pipeline_id]).generate_state(1)[0])


def dataset_options(config: DataConfig) -> tf.data.Options:
    """tf.data options of every reader: no auto-sharding, determinism and threads from config."""
    options = tf.data.Options()
    # We shard explicitly; the AUTO policy would shard a second time (and warn).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = config.deterministic
    if config.threadpool_size:
        options.threading.private_threadpool_size = config.threadpool_size
    return options


def read_files(source: RecordSource, paths: Sequence[str]) -> tf.data.Dataset:
    """The source's feature dicts of `paths`, interleaved in a reproducible order."""
    # deterministic=True whatever the options say: resume and record sharding need
    # every rebuild (and every pipeline) to see one record order.
    return tf.data.Dataset.from_tensor_slices(list(paths)).interleave(
        source.read, cycle_length=max(1, min(len(paths), 8)), num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )


def remainder_mask(num_records: int, records_per_epoch: int, seed: int) -> np.ndarray:
    """Which of a pipeline's records (by position in its read order) this epoch keeps.

    Exactly `records_per_epoch` True entries at positions drawn anew for every seed.
    """
    if records_per_epoch > num_records:
        raise ValueError(
            f"records_per_epoch={records_per_epoch} exceeds the {num_records} records of this "
            "input pipeline; compute it with steps_per_epoch."
        )
    keep = np.zeros(num_records, dtype=bool)
    keep[np.random.default_rng(seed).permutation(num_records)[:records_per_epoch]] = True
    return keep


def drop_remainder(records: tf.data.Dataset, keep: np.ndarray) -> tf.data.Dataset:
    """Keeps the records whose read position `keep` (see `remainder_mask`) marks True."""
    # Dropping the tail of the shuffled stream would always drop records of the last
    # file read (a shuffle buffer only mixes nearby records); with one file per
    # pipeline that tail is the same every epoch. A seeded mask by read position
    # spreads the dropped remainder uniformly over the pipeline's records instead.
    if keep.all():
        return records
    # The trailing False drops any record past the files' counts. Zipping the mask
    # costs half of enumerate + gather per record, and the shuffle buffer fills through here.
    return (
        tf.data.Dataset.zip(records, tf.data.Dataset.from_tensor_slices(np.append(keep, False)))
        .filter(lambda _, kept: kept)
        .map(lambda record, _: record)
    )


@functools.lru_cache(maxsize=None)
def _traced_train_preprocess(
    image_size: int, area_range: tuple[float, float], aspect_ratio_range: tuple[float, float]
) -> Any:
    # Traced once per setting: `Dataset.map` retraces (with autograph) for every
    # epoch's new dataset, 0.06 s of the ~0.2 s set-up of each epoch (measured, TF 2.21).
    return tf.function(
        lambda encoded, seed: preprocess.preprocess_for_train(
            encoded, seed, image_size, area_range, aspect_ratio_range
        ),
        autograph=False,
    ).get_concrete_function(tf.TensorSpec([], tf.string), tf.TensorSpec([2], tf.int64))


def _outputs(image: tf.Tensor, record: dict[str, tf.Tensor], with_keys: bool) -> tuple:
    return (image, record[LABEL], record[KEY]) if with_keys else (image, record[LABEL])


def make_train_dataset(
    source: RecordSource,
    config: DataConfig,
    *,
    epoch: int,
    batch_size: int,
    records_per_epoch: int,
    start_record: int = 0,
    num_pipelines: int = 1,
    pipeline_id: int = 0,
    with_keys: bool = False,
) -> tf.data.Dataset:
    """One epoch of training batches for one input pipeline.

    With `config.tf_data_service` set, decoding, cropping and batching run on that
    tf.data service cluster; the epoch's records and batch count stay exact, a
    mid-epoch resume is exact in batch count only (see `data_service`).

    Args:
      source: where the records come from (our shards or a TFDS dataset).
      config: the data configuration.
      epoch: the epoch number; it seeds the file and record order.
      batch_size: this pipeline's batch size (per replica under MirroredStrategy).
      records_per_epoch: records this pipeline delivers per epoch (steps x batch);
        the remainder beyond it is dropped, differently in every epoch.
      start_record: records of this epoch already consumed (resume).
      num_pipelines: input pipelines in the job (workers).
      pipeline_id: this pipeline's index.
      with_keys: also yield each record's key (exactly-once tests).

    Returns:
      A dataset of (uint8 images [B, S, S, 3], int32 labels [B]) batches, plus keys.

    Example:
      >>> reader = make_reader(DataConfig(data_dir="shards"))
      >>> steps = reader.steps_per_epoch(64)
      >>> batches = reader.train_dataset(epoch=0, batch_size=64, records_per_epoch=steps * 64)
    """
    share = pipeline_share(source.files("train"), num_pipelines, pipeline_id)
    seed = epoch_seed(config.seed, epoch, pipeline_id)
    keep = remainder_mask(share.num_records, records_per_epoch, seed)
    crop = _traced_train_preprocess(
        config.image_size,
        (config.crop_area_min, config.crop_area_max),
        (config.aspect_ratio_min, config.aspect_ratio_max),
    )

    def parse(index, record):
        crop_seed = tf.stack([tf.constant(seed % (2**31), tf.int64), index])
        return _outputs(crop(record[IMAGE], crop_seed), record, with_keys)

    # Shuffling the file order first lets a small record buffer still mix the data.
    # Sharding by record needs one file order in every pipeline: it stays fixed.
    file_order = (np.random.default_rng(seed).permutation(len(share.files))
                  if share.policy == "file" else np.arange(len(share.files)))
    if config.tf_data_service:
        return _service_train_dataset(source, share, config, parse, file_order=file_order,
                                      keep=keep, seed=seed, epoch=epoch, batch_size=batch_size,
                                      records_per_epoch=records_per_epoch,
                                      start_record=start_record)
    records = read_files(source, [share.files[i].path for i in file_order])
    if share.policy == "record":
        records = records.shard(share.num_pipelines, share.pipeline_id)
    # The remainder goes before the shuffle: the mask indexes the fixed read order.
    records = drop_remainder(records, keep)
    records = records.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    # take, then skip, both before decoding: skipping a consumed record costs no decode.
    records = records.take(records_per_epoch).skip(start_record)
    # The position in the epoch seeds the crop, so a resumed epoch crops alike.
    records = records.enumerate(start=start_record)
    dataset = records.map(parse, num_parallel_calls=AUTOTUNE)
    # Full batches only: every pipeline runs the same number of steps.
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(config.prefetch_batches).with_options(dataset_options(config))


def _service_train_dataset(
    source: RecordSource,
    share: PipelineShare,
    config: DataConfig,
    parse: Any,
    *,
    file_order: np.ndarray,
    keep: np.ndarray,
    seed: int,
    epoch: int,
    batch_size: int,
    records_per_epoch: int,
    start_record: int,
) -> tf.data.Dataset:
    # See data_service's docstring for why each record is indexed by its place in the
    # share (remainder, stride, crop seed) rather than by its place in the stream.
    if start_record:
        data_service.warn_inexact_resume()
    stride, phase = (
        (share.num_pipelines, share.pipeline_id) if share.policy == "record" else (1, 0)
    )
    records = data_service.indexed_records(share.files, source.read, file_order, keep,
                                           stride, phase)
    dataset = data_service.serve_epoch(
        records, parse, address=config.tf_data_service,
        name=data_service.job_name(epoch, share.pipeline_id, start_record),
        batch_size=batch_size, num_batches=(records_per_epoch - start_record) // batch_size,
        shuffle_buffer=config.shuffle_buffer, seed=seed, options=dataset_options(config),
    )
    return dataset.prefetch(config.prefetch_batches)


def make_eval_dataset(
    source: RecordSource,
    config: DataConfig,
    *,
    batch_size: int,
    num_pipelines: int = 1,
    pipeline_id: int = 0,
    with_keys: bool = False,
) -> tf.data.Dataset:
    """Every validation record once, in file order, with the evaluation preprocessing.

    Evaluation shards by record so that the pipelines' shares differ by at most one
    record, and keeps the final partial batch: every example counts.
    """
    records = read_files(source, [f.path for f in source.files("validation")])
    if num_pipelines > 1:
        records = records.shard(num_pipelines, pipeline_id)

    def parse(record):
        image = preprocess.preprocess_for_eval(
            record[IMAGE], config.image_size, config.eval_crop_fraction
        )
        return _outputs(image, record, with_keys)

    dataset = records.map(parse, num_parallel_calls=AUTOTUNE)
    if config.cache_eval:
        dataset = dataset.cache()
    dataset = dataset.batch(batch_size, drop_remainder=False)
    return dataset.prefetch(config.prefetch_batches).with_options(dataset_options(config))


def log_sharding(files: Sequence[RecordFile], num_pipelines: int) -> None:
    """Says once how the training files are split across input pipelines, and why."""
    policy = pipeline_share(files, num_pipelines, 0).policy
    if policy == "file":
        logging.info("Input sharding: by file (%d files over %d input pipelines).",
                     len(files), num_pipelines)
    else:
        logging.info(
            "Input sharding: by record, because %d files are fewer than %d input pipelines; "
            "every pipeline reads all files and keeps a disjoint stride of records. "
            "Write more shards (visiontrain-data build --num_shards) to shard by file.",
            len(files), num_pipelines,
        )


class Reader:
    """A record source behind the pipelines above: what the training loop reads.

    The methods mirror `make_train_dataset` and `make_eval_dataset` with the source
    and config bound, so the loop has one code path for every source.
    """

    def __init__(self, source: RecordSource, config: DataConfig):
        self.source = source
        self.config = config
        self.labels = source.labels

    @property
    def digest(self) -> str:
        """Identifies the data a run was trained on (see `RecordSource.digest`)."""
        return self.source.digest

    def preflight(self) -> None:
        """Checks the source's files, and that the tf.data service answers when configured."""
        self.source.preflight()
        if self.config.tf_data_service:
            data_service.check_dispatcher(self.config.tf_data_service)

    def steps_per_epoch(self, global_batch_size: int, num_pipelines: int = 1) -> int:
        """See `steps_per_epoch`."""
        return steps_per_epoch(self.source.files("train"), global_batch_size, num_pipelines)

    def train_dataset(
        self, *, epoch: int, batch_size: int, records_per_epoch: int, start_record: int = 0,
        num_pipelines: int = 1, pipeline_id: int = 0, with_keys: bool = False,
    ) -> tf.data.Dataset:
        """See `make_train_dataset`."""
        return make_train_dataset(
            self.source, self.config, epoch=epoch, batch_size=batch_size,
            records_per_epoch=records_per_epoch, start_record=start_record,
            num_pipelines=num_pipelines, pipeline_id=pipeline_id, with_keys=with_keys,
        )

    def eval_dataset(
        self, *, batch_size: int, num_pipelines: int = 1, pipeline_id: int = 0,
        with_keys: bool = False,
    ) -> tf.data.Dataset:
        """See `make_eval_dataset`."""
        return make_eval_dataset(self.source, self.config, batch_size=batch_size,
                                 num_pipelines=num_pipelines, pipeline_id=pipeline_id,
                                 with_keys=with_keys)

    def log_sharding(self, num_pipelines: int) -> None:
        """See `log_sharding`."""
        log_sharding(self.source.files("train"), num_pipelines)


def make_reader(config: DataConfig) -> Reader:
    """The reader of `config.data_dir`: a prepared TFDS dataset for `tfds:NAME`, else shards."""
    spec = tfds_reader.tfds_spec(config.data_dir)
    if spec:
        return Reader(tfds_reader.TfdsSource(spec, config.tfds_data_dir), config)
    return Reader(ShardSource(config.data_dir, config.verify_sha256), config)


def encoded_records(
    data_dir: str, split: str, batch_size: int, interleave: bool = False
) -> tf.data.Dataset:
    """(encoded image bytes [B], labels [B]) of a split, unprocessed.

    In file order; with `interleave`, one record of each shard in turn, so a short
    prefix samples every shard (shards are written round-robin over classes).
    """
    files = [f.path for f in ShardSource(data_dir).files(split)]

    def parse(serialized):
        features = schema.parse_example(serialized)
        return features[schema.ENCODED], tf.cast(features[schema.LABEL], tf.int32)

    if interleave:
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=len(files), block_length=1
        )
    else:
        records = tf.data.TFRecordDataset(files)
    return records.map(parse).batch(batch_size)
