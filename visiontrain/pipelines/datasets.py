"""tf.data readers over our TFRecord shards: one epoch at a time, exactly once, resumable.

Training reads one epoch per dataset. The epoch's order is a pure function of
(seed, epoch, input pipeline), so a restarted job rebuilds the same order and skips
the records it already consumed *before* decoding them: that is how the data position
survives a restart (distributed iterators cannot be checkpointed).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from typing import Any

import numpy as np
import tensorflow as tf

from visiontrain.config import DataConfig
from visiontrain.pipelines import data_service, preprocess, schema
from visiontrain.pipelines import manifest as manifest_lib

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class PipelineShare:
    """What one input pipeline reads: its files and how it shards them."""

    files: tuple[str, ...]
    # "file": this pipeline owns whole files; "record": every pipeline reads every
    # file in the same order and keeps every num_pipelines-th record.
    policy: str
    num_records: int
    num_pipelines: int
    pipeline_id: int


def split_shards(data_dir: str, manifest: dict[str, Any], split: str) -> list[dict[str, Any]]:
    """The manifest's shard entries for `split`, with absolute paths under `path`."""
    splits = manifest.get("splits", {})
    if split not in splits:
        raise ValueError(
            f"The data in {data_dir} has no split {split!r}; it has {sorted(splits)}."
        )
    return [
        dict(shard, path=os.path.join(data_dir, shard["file"]))
        for shard in splits[split]["shards"]
    ]


def pipeline_share(
    shards: list[dict[str, Any]], num_pipelines: int, pipeline_id: int
) -> PipelineShare:
    """Assigns shards to one of `num_pipelines` input pipelines.

    Files are dealt round-robin when there are at least as many files as pipelines
    (each worker then reads only its own files); otherwise every pipeline reads all
    files and keeps a disjoint, strided subset of records.
    """
    if len(shards) >= num_pipelines:
        mine = shards[pipeline_id::num_pipelines]
        return PipelineShare(
            files=tuple(s["path"] for s in mine),
            policy="file",
            num_records=sum(s["records"] for s in mine),
            num_pipelines=num_pipelines,
            pipeline_id=pipeline_id,
        )
    total = sum(s["records"] for s in shards)
    # Pipeline p keeps records p, p + P, p + 2P, ... of the fixed file order.
    return PipelineShare(
        files=tuple(s["path"] for s in shards),
        policy="record",
        num_records=len(range(pipeline_id, total, num_pipelines)),
        num_pipelines=num_pipelines,
        pipeline_id=pipeline_id,
    )


def steps_per_epoch(
    shards: list[dict[str, Any]], global_batch_size: int, num_pipelines: int = 1
) -> int:
    """Training steps in one epoch, from the manifest's record counts.

    Every pipeline must run the same number of steps (collectives would hang
    otherwise), so the pipeline with the fewest records sets the pace.
    """
    per_pipeline_batch = global_batch_size // num_pipelines
    fewest = min(
        pipeline_share(shards, num_pipelines, p).num_records for p in range(num_pipelines)
    )
    steps = fewest // per_pipeline_batch
    if steps < 1:
        raise ValueError(
            f"An epoch of {fewest} records per input pipeline is smaller than one batch of "
            f"{per_pipeline_batch}; lower --global_batch_size."
        )
    return steps


def _epoch_seed(seed: int, epoch: int, pipeline_id: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, pipeline_id]).generate_state(1)[0])


def dataset_options(config: DataConfig) -> tf.data.Options:
    """tf.data options of every reader: no auto-sharding, determinism and threads from config."""
    options = tf.data.Options()
    # We shard explicitly above; the AUTO policy would shard a second time (and warn).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = config.deterministic
    if config.threadpool_size:
        options.threading.private_threadpool_size = config.threadpool_size
    return options


def _records(share: PipelineShare, file_order: np.ndarray) -> tf.data.Dataset:
    files = tf.data.Dataset.from_tensor_slices([share.files[i] for i in file_order])
    # deterministic=True: the record order must be reproducible for resume and sharding.
    records = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=max(1, min(len(share.files), 8)),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    if share.policy == "record":
        records = records.shard(share.num_pipelines, share.pipeline_id)
    return records


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


def drop_remainder(
    records: tf.data.Dataset, num_records: int, records_per_epoch: int, seed: int
) -> tf.data.Dataset:
    """Keeps the `records_per_epoch` records that `remainder_mask` picks for this seed."""
    # Dropping the tail of the shuffled stream would always drop records of the last
    # file read (a shuffle buffer only mixes nearby records); with one file per
    # pipeline that tail is the same every epoch. A seeded mask by read position
    # spreads the dropped remainder uniformly over the pipeline's records instead.
    if records_per_epoch == num_records:
        return records
    # The trailing False drops any record past the manifest's count. Zipping the mask
    # costs half of enumerate + gather per record, and the shuffle buffer fills through here.
    keep = np.append(remainder_mask(num_records, records_per_epoch, seed), False)
    return (
        tf.data.Dataset.zip(records, tf.data.Dataset.from_tensor_slices(keep))
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


def make_train_dataset(
    shards: list[dict[str, Any]],
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

    With `config.tf_data_service` set, parsing, decoding, cropping and batching run
    on that tf.data service cluster; the epoch's records and batch count stay exact,
    a mid-epoch resume is exact in batch count only (see `data_service`).

    Args:
      shards: the split's shard entries (see `split_shards`).
      config: the data configuration.
      epoch: the epoch number; it seeds the file and record order.
      batch_size: this pipeline's batch size (per replica under MirroredStrategy).
      records_per_epoch: records this pipeline delivers per epoch (steps x batch);
        the shuffled remainder beyond it is dropped, differently in every epoch.
      start_record: records of this epoch already consumed (resume).
      num_pipelines: input pipelines in the job (workers).
      pipeline_id: this pipeline's index.
      with_keys: also yield each record's sha256 key (exactly-once tests).

    Returns:
      A dataset of (uint8 images [B, S, S, 3], int32 labels [B]) batches, plus keys.
    """
    share = pipeline_share(shards, num_pipelines, pipeline_id)
    seed = _epoch_seed(config.seed, epoch, pipeline_id)
    # Shuffling the file order first lets a small record buffer still mix the data.
    file_order = (
        np.random.default_rng(seed).permutation(len(share.files))
        if share.policy == "file"
        else np.arange(len(share.files))
    )

    train_preprocess = _traced_train_preprocess(
        config.image_size,
        (config.crop_area_min, config.crop_area_max),
        (config.aspect_ratio_min, config.aspect_ratio_max),
    )

    def parse(index, serialized):
        features = schema.parse_example(serialized)
        crop_seed = tf.stack([tf.constant(seed % (2**31), tf.int64), index])
        image = train_preprocess(features[schema.ENCODED], crop_seed)
        label = tf.cast(features[schema.LABEL], tf.int32)
        if with_keys:
            return image, label, features[schema.SHA256]
        return image, label

    if config.tf_data_service:
        return _service_train_dataset(
            shards, share, config, parse, file_order=file_order, seed=seed, epoch=epoch,
            batch_size=batch_size, records_per_epoch=records_per_epoch,
            start_record=start_record,
        )
    records = drop_remainder(
        _records(share, file_order), share.num_records, records_per_epoch, seed
    )
    records = records.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    # take, then skip, both before decoding: skipping a consumed record costs no decode.
    records = records.take(records_per_epoch).skip(start_record)
    records = records.enumerate(start=start_record)
    dataset = records.map(parse, num_parallel_calls=AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(config.prefetch_batches).with_options(dataset_options(config))


def _service_train_dataset(
    shards: list[dict[str, Any]],
    share: PipelineShare,
    config: DataConfig,
    parse: Any,
    *,
    file_order: np.ndarray,
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
    records = data_service.indexed_records(
        share.files, shards, file_order,
        remainder_mask(share.num_records, records_per_epoch, seed), stride, phase,
    )
    dataset = data_service.serve_epoch(
        records, parse, address=config.tf_data_service,
        name=data_service.job_name(epoch, share.pipeline_id, start_record),
        batch_size=batch_size, num_batches=(records_per_epoch - start_record) // batch_size,
        shuffle_buffer=config.shuffle_buffer, seed=seed, options=dataset_options(config),
    )
    return dataset.prefetch(config.prefetch_batches)


def make_eval_dataset(
    shards: list[dict[str, Any]],
    config: DataConfig,
    *,
    batch_size: int,
    num_pipelines: int = 1,
    pipeline_id: int = 0,
    with_keys: bool = False,
) -> tf.data.Dataset:
    """Every record of a split once, in file order, with the evaluation preprocessing.

    Evaluation shards by record so that the pipelines' shares differ by at most one
    record, and keeps the final partial batch: every example counts.
    """
    share = pipeline_share(shards, num_pipelines, pipeline_id)
    if share.policy == "file" and num_pipelines > 1:
        share = dataclasses.replace(share, files=tuple(s["path"] for s in shards), policy="record")
    records = _records(share, np.arange(len(share.files)))

    def parse(serialized):
        features = schema.parse_example(serialized)
        image = preprocess.preprocess_for_eval(
            features[schema.ENCODED], config.image_size, config.eval_crop_fraction
        )
        label = tf.cast(features[schema.LABEL], tf.int32)
        if with_keys:
            return image, label, features[schema.SHA256]
        return image, label

    dataset = records.map(parse, num_parallel_calls=AUTOTUNE)
    if config.cache_eval:
        dataset = dataset.cache()
    dataset = dataset.batch(batch_size, drop_remainder=False)
    return dataset.prefetch(config.prefetch_batches).with_options(dataset_options(config))


def log_sharding(shards: list[dict[str, Any]], num_pipelines: int) -> None:
    """Says once how the training files are split across input pipelines, and why."""
    policy = pipeline_share(shards, num_pipelines, 0).policy
    if policy == "file":
        logging.info(
            "Input sharding: by file (%d files over %d input pipelines).",
            len(shards),
            num_pipelines,
        )
    else:
        logging.info(
            "Input sharding: by record, because %d files are fewer than %d input pipelines; "
            "every pipeline reads all files and keeps a disjoint stride of records. "
            "Write more shards (visiontrain-data build --num_shards) to shard by file.",
            len(shards),
            num_pipelines,
        )


def check_label_map(expected: list[str], manifest: dict[str, Any]) -> None:
    """Refuses data whose label map differs from `expected` (e.g. a checkpoint's).

    Raises:
      ValueError: naming both label maps; the class indices would silently mean
        different classes otherwise.
    """
    labels = list(manifest["labels"])
    if list(expected) != labels:
        raise ValueError(
            f"The checkpoint was trained with labels {list(expected)} but the data has "
            f"{labels}; point --data_dir at data built with the same classes, or start a "
            "new run directory."
        )


class ShardInput:
    """Our TFRecord shards behind the interface of `tfds_reader.TfdsInput`.

    The training loop takes either source and has one code path for both.
    """

    def __init__(self, config: DataConfig):
        self.config = config
        self.manifest = manifest_lib.load_manifest(config.data_dir)
        self.labels = list(self.manifest["labels"])
        self._shards = {split: split_shards(config.data_dir, self.manifest, split)
                        for split in ("train", "validation")}

    def preflight(self) -> None:
        """Checks every shard's record count (sha256 when configured) and the tf.data service."""
        manifest_lib.preflight(self.config.data_dir, ["train", "validation"],
                               self.config.verify_sha256)
        if self.config.tf_data_service:
            data_service.check_dispatcher(self.config.tf_data_service)

    @property
    def digest(self) -> str:
        """sha256 of the manifest: identifies the data a run was trained on."""
        return manifest_lib.manifest_digest(self.config.data_dir)

    def steps_per_epoch(self, global_batch_size: int, num_pipelines: int = 1) -> int:
        """See `steps_per_epoch`."""
        return steps_per_epoch(self._shards["train"], global_batch_size, num_pipelines)

    def train_dataset(self, **kwargs: Any) -> tf.data.Dataset:
        """See `make_train_dataset`; takes its keyword arguments."""
        return make_train_dataset(self._shards["train"], self.config, **kwargs)

    def eval_dataset(self, **kwargs: Any) -> tf.data.Dataset:
        """See `make_eval_dataset`; takes its keyword arguments."""
        return make_eval_dataset(self._shards["validation"], self.config, **kwargs)

    def log_sharding(self, num_pipelines: int) -> None:
        """See `log_sharding`."""
        log_sharding(self._shards["train"], num_pipelines)


def encoded_records(
    data_dir: str, split: str, batch_size: int, interleave: bool = False
) -> tf.data.Dataset:
    """(encoded image bytes [B], labels [B]) of a split, unprocessed.

    In file order; with `interleave`, one record of each shard in turn, so a short
    prefix samples every shard (shards are written round-robin over classes).
    """
    manifest = manifest_lib.load_manifest(data_dir)
    files = [s["path"] for s in split_shards(data_dir, manifest, split)]

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
