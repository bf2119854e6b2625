"""The training and evaluation tf.data pipelines, one of each, over any `RecordSource`.

A training dataset runs epoch after epoch. Each epoch's order is a pure function of
(seed, epoch, input pipeline), computed inside the graph, so a restarted job rebuilds
the same order from its step and skips the records it already consumed *before*
decoding them: that is how the data position survives a restart (distributed
iterators cannot be checkpointed).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from visiontrain.config import DataConfig
from visiontrain.pipelines import (
    balanced,
    data_service,
    epoch_order,
    manifest,
    record_images,
    tfds_reader,
)
from visiontrain.pipelines.record_sources import (
    KEY,
    LABEL,
    RecordFile,
    RecordSource,
    ShardSource,
)

AUTOTUNE = tf.data.AUTOTUNE
# Any fixed nonzero value; see `make_train_dataset`.
_SHUFFLE_GRAPH_SEED = 1


def dataset_options(config: DataConfig) -> tf.data.Options:
    """tf.data options of every reader: no auto-sharding, no autotuner, determinism and
    threads from config."""
    options = tf.data.Options()
    # We shard explicitly; the AUTO policy would shard a second time (and warn).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = config.deterministic
    # tf.data's autotuner left the cores idle in some processes, a different share in each:
    # on one core, our reader idled a quarter of the time in 4 of 5 processes (415 against
    # 470-560 img/s), none with it off. Off, AUTOTUNE parallelism is every core; prefetch is ours.
    options.autotune.enabled = False
    if config.threadpool_size:
        options.threading.private_threadpool_size = config.threadpool_size
    return options


def read_files(source: RecordSource, paths: Sequence[str] | tf.Tensor) -> tf.data.Dataset:
    """The source's feature dicts of `paths` (1-D, of static length), interleaved in a
    reproducible order."""
    paths = tf.convert_to_tensor(paths, tf.string)
    # deterministic=True whatever the options say: resume and record sharding need
    # every rebuild (and every pipeline) to see one record order.
    return tf.data.Dataset.from_tensor_slices(paths).interleave(
        source.read, cycle_length=max(1, min(int(paths.shape[0]), 8)),
        num_parallel_calls=AUTOTUNE, deterministic=True,
    )


# Dataset functions here are plain TF code: converting them with autograph for every
# new dataset was a third of its set-up (measured, TF 2.21).
_plain = tf.autograph.experimental.do_not_convert


def drop_remainder(records: tf.data.Dataset, keep: tf.Tensor) -> tf.data.Dataset:
    """Keeps the records whose read position `keep` marks True (see `remainder_mask`)."""
    # Dropping the tail of the shuffled stream would always drop records of the last
    # file read (a shuffle buffer only mixes nearby records); with one file per
    # pipeline that tail is the same every epoch. A seeded mask by read position
    # spreads the dropped remainder uniformly over the pipeline's records instead.
    # The trailing False drops any record past the files' counts. Zipping the mask
    # costs half of enumerate + gather per record, and the shuffle buffer fills through here.
    mask = tf.data.Dataset.from_tensor_slices(tf.concat([keep, [False]], axis=0))
    return (
        tf.data.Dataset.zip(records, mask)
        .filter(_plain(lambda _, kept: kept))
        .map(_plain(lambda record, _: record))
    )


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
    epochs: int = 1,
    num_pipelines: int = 1,
    pipeline_id: int = 0,
    with_keys: bool = False,
    class_counts: Sequence[int] | None = None,
) -> tf.data.Dataset:
    """`epochs` epochs of training batches for one input pipeline, from `epoch` on.

    Every epoch delivers exactly `records_per_epoch` records, so its batches never
    straddle two epochs. With `config.tf_data_service` set, decoding, cropping and
    batching run on that tf.data service cluster; the epochs' records and batch
    counts stay exact, a mid-epoch resume is exact in batch count only (see
    `data_service`).

    Args:
      source: where the records come from (our shards or a TFDS dataset).
      config: the data configuration.
      epoch: the first epoch; each epoch's number seeds its file and record order.
      batch_size: this pipeline's batch size (per replica under MirroredStrategy).
      records_per_epoch: records this pipeline delivers per epoch (steps x batch);
        the remainder beyond it is dropped, differently in every epoch.
      start_record: records of the first epoch already consumed (resume).
      epochs: how many epochs the dataset runs; training passes the rest of the run.
      num_pipelines: input pipelines in the job (workers).
      pipeline_id: this pipeline's index.
      with_keys: also yield each record's key (exactly-once tests).
      class_counts: training records per class: draw the classes balanced (see
        `balanced`) instead of every record once per epoch; None: every record once.

    Returns:
      A dataset of (uint8 images [B, S, S, 3], int32 labels [B]) batches, plus keys;
      a multi-label source's labels are [B, C] multi-hot.

    Example:
      >>> reader = make_reader(DataConfig(data_dir="shards"))
      >>> steps = reader.steps_per_epoch(64)
      >>> batches = reader.train_dataset(epoch=0, batch_size=64, records_per_epoch=steps * 64)
    """
    share = epoch_order.pipeline_share(source.files("train"), num_pipelines, pipeline_id)
    epoch_order.check_records_per_epoch(share.num_records, records_per_epoch)
    crop = record_images.train_crop(config, source.jpeg_png_only)

    @_plain
    def parse(seed, index, record):
        image = crop(record, tf.stack([seed, index]))
        return _outputs(image, record, with_keys)

    if config.tf_data_service and class_counts is not None:
        raise ValueError("--sampling=balanced runs in this process only; drop "
                         "--tf_data_service or --sampling=balanced.")
    if config.tf_data_service:
        return _service_train_dataset(
            source, share, config, parse, epoch=epoch, epochs=epochs, batch_size=batch_size,
            records_per_epoch=records_per_epoch, start_record=start_record)

    def read_share(seed):
        paths = tf.constant([f.path for f in share.files])
        # Shuffling the file order first lets a small record buffer still mix the data.
        # Sharding by record needs one file order in every pipeline: it stays fixed.
        if share.policy == "file":
            paths = tf.gather(paths, epoch_order.permutation(len(share.files), seed, 0))
        records = read_files(source, paths)
        if share.policy == "record":
            records = records.shard(share.num_pipelines, share.pipeline_id)
        return records

    def shuffle(records, seed):
        # A graph-level seed of our own for this function's graph only: the order then
        # follows the epoch seed alone, whatever the process-wide seed (with which, if 0,
        # `shuffle` could not take a tensor seed at all).
        tf.compat.v1.set_random_seed(_SHUFFLE_GRAPH_SEED)
        return records.shuffle(config.shuffle_buffer, seed=seed,
                               reshuffle_each_iteration=False)

    @_plain
    def one_epoch(this_epoch):
        seed = epoch_order.epoch_seed(config.seed, this_epoch, pipeline_id)
        if class_counts is not None:
            # Each pass over the share in its own seeded order; see `balanced`.
            records = balanced.balanced_stream(
                _plain(lambda number: shuffle(read_share(balanced.pass_seed(seed, number)),
                                              balanced.pass_seed(seed, number))),
                lambda record: record[LABEL], class_counts, seed)
        else:
            records = read_share(seed)
            # The remainder goes before the shuffle: the mask indexes the fixed read order.
            distinct = epoch_order.distinct_records(records_per_epoch, config.aug_repeats)
            if distinct < share.num_records:
                records = drop_remainder(
                    records, epoch_order.remainder_mask(share.num_records, distinct, seed))
            if config.aug_repeats > 1:
                # Adjacent before the shuffle, so the copies land in nearby batches; each
                # copy has its own position, hence its own crop and augmentation.
                records = records.flat_map(
                    _plain(lambda record: tf.data.Dataset.from_tensors(record).repeat(
                        config.aug_repeats)))
            records = shuffle(records, seed)
        # take, then skip, both before decoding: skipping a consumed record costs no decode.
        first = tf.where(this_epoch == epoch, tf.constant(start_record, tf.int64), 0)
        records = records.take(records_per_epoch).skip(first)
        # The position in the epoch seeds the crop, so a resumed epoch crops alike.
        return records.enumerate(start=first).map(
            _plain(lambda index, record: (seed, index, record)))

    # One dataset for all epochs, each built in the graph from its number: the next
    # epoch's files open and its shuffle buffer fills while the last batches of the
    # previous one are still decoding and prefetched, and nothing is traced, started
    # or autotuned anew per epoch (that set-up cost 15-35% of a 200-2,000-image epoch).
    dataset = tf.data.Dataset.range(epoch, epoch + epochs).flat_map(one_epoch)
    dataset = dataset.map(parse, num_parallel_calls=AUTOTUNE)
    # Full batches only: every pipeline runs the same number of steps.
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(config.prefetch_batches).with_options(dataset_options(config))


def _service_train_dataset(
    source: RecordSource,
    share: epoch_order.PipelineShare,
    config: DataConfig,
    parse: Any,
    *,
    epoch: int,
    epochs: int,
    batch_size: int,
    records_per_epoch: int,
    start_record: int,
) -> tf.data.Dataset:
    # See data_service's docstring for why each record is indexed by its place in the
    # share (remainder, stride, crop seed) rather than by its place in the stream.
    # The service splits a job by file, so an epoch is one job and epochs are chained.
    if start_record:
        data_service.warn_inexact_resume()
    stride, phase = (
        (share.num_pipelines, share.pipeline_id) if share.policy == "record" else (1, 0)
    )
    served = []
    for this_epoch in range(epoch, epoch + epochs):
        seed = epoch_order.epoch_seed(config.seed, this_epoch, share.pipeline_id)
        first = start_record if this_epoch == epoch else 0
        file_order = (epoch_order.permutation(len(share.files), seed, 0)
                      if share.policy == "file" else tf.range(len(share.files)))
        records = data_service.indexed_records(
            share.files, source.read, file_order,
            epoch_order.remainder_mask(share.num_records, records_per_epoch, seed),
            stride, phase,
        ).map(lambda index, record, seed=seed: (seed, index, record))
        served.append(data_service.serve_epoch(
            records, parse, address=config.tf_data_service,
            name=data_service.job_name(this_epoch, share.pipeline_id, first),
            batch_size=batch_size, num_batches=(records_per_epoch - first) // batch_size,
            shuffle_buffer=config.shuffle_buffer, seed=seed, options=dataset_options(config),
        ))
    return functools.reduce(tf.data.Dataset.concatenate, served).prefetch(
        config.prefetch_batches)


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
        return _outputs(record_images.eval_view(record, config, source.jpeg_png_only), record,
                        with_keys)

    dataset = records.map(parse, num_parallel_calls=AUTOTUNE)
    if config.cache_eval:
        dataset = dataset.cache()
    dataset = dataset.batch(batch_size, drop_remainder=False)
    return dataset.prefetch(config.prefetch_batches).with_options(dataset_options(config))


def log_sharding(files: Sequence[RecordFile], num_pipelines: int) -> None:
    """Says once how the training files are split across input pipelines, and why."""
    policy = epoch_order.pipeline_share(files, num_pipelines, 0).policy
    if policy == "file":
        logging.info("Input sharding: by file (%d file%s over %d input pipeline%s).",
                     len(files), "s" * (len(files) != 1), num_pipelines, "s" * (num_pipelines != 1))
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
        self.multi_label = source.multi_label

    @property
    def identity(self) -> dict[str, str]:
        """Identifies the data a run was trained on (see `RecordSource.identity`)."""
        return self.source.identity

    def preflight(self) -> None:
        """Checks the source's files, and that the tf.data service answers when configured.

        Warns of classes without training records (shards built with
        --allow_untrained_classes, or before the build refused them): their outputs
        never train.
        """
        self.source.preflight()
        untrained = (manifest.untrained_classes(self.source.manifest)
                     if isinstance(self.source, ShardSource) else [])
        if untrained:
            logging.warning(
                "%d class(es) have no training records in %s: %s; the model keeps an output "
                "for each that never trains%s. Add training images and rebuild with "
                "visiontrain-data build.", len(untrained), self.config.data_dir,
                manifest.name_classes(untrained),
                ", with a threshold tuned on validation alone" if self.multi_label else "")
        if self.config.sampling == "balanced":
            if self.multi_label:
                raise ValueError("--sampling=balanced draws one class per image; for "
                                 "multi-label data use --class_weights=balanced instead.")
            if self.class_counts("train") is None:
                raise ValueError("--sampling=balanced needs the class counts that only "
                                 "visiontrain-data shards record; convert the data with "
                                 "visiontrain-data build.")
        if self.config.tf_data_service:
            data_service.check_dispatcher(self.config.tf_data_service)

    def steps_per_epoch(self, global_batch_size: int, num_pipelines: int = 1) -> int:
        """See `epoch_order.steps_per_epoch`."""
        return epoch_order.steps_per_epoch(self.source.files("train"), global_batch_size,
                                           num_pipelines)

    def train_dataset(
        self, *, epoch: int, batch_size: int, records_per_epoch: int, start_record: int = 0,
        epochs: int = 1, num_pipelines: int = 1, pipeline_id: int = 0, with_keys: bool = False,
    ) -> tf.data.Dataset:
        """See `make_train_dataset`; `--sampling=balanced` passes the class counts."""
        counts = None
        if self.config.sampling == "balanced":
            by_name = self.class_counts("train")
            counts = [by_name.get(label, 0) for label in self.labels]
        return make_train_dataset(
            self.source, self.config, epoch=epoch, batch_size=batch_size,
            records_per_epoch=records_per_epoch, start_record=start_record, epochs=epochs,
            num_pipelines=num_pipelines, pipeline_id=pipeline_id, with_keys=with_keys,
            class_counts=counts,
        )

    def eval_dataset(
        self, *, batch_size: int, num_pipelines: int = 1, pipeline_id: int = 0,
        with_keys: bool = False,
    ) -> tf.data.Dataset:
        """See `make_eval_dataset`."""
        return make_eval_dataset(self.source, self.config, batch_size=batch_size,
                                 num_pipelines=num_pipelines, pipeline_id=pipeline_id,
                                 with_keys=with_keys)

    def class_counts(self, split: str) -> dict[str, int] | None:
        """Examples per label in `split` as the manifest records them; None for sources
        without a manifest (TFDS)."""
        if not isinstance(self.source, ShardSource):
            return None
        return dict(self.source.manifest["splits"][split]["class_counts"])

    def log_sharding(self, num_pipelines: int) -> None:
        """See `log_sharding`."""
        log_sharding(self.source.files("train"), num_pipelines)


def make_reader(config: DataConfig) -> Reader:
    """The reader of `config.data_dir`: a prepared TFDS dataset for `tfds:NAME`, else shards."""
    spec = tfds_reader.tfds_spec(config.data_dir)
    if spec:
        return Reader(tfds_reader.TfdsSource(spec, config.tfds_data_dir), config)
    return Reader(ShardSource(config.data_dir, config.verify_sha256), config)
