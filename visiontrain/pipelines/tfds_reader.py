"""A prepared TFDS image-classification dataset as a direct training source.

The same contract as the shard reader (`datasets.py`): one epoch per dataset, every
example once per epoch except a seeded remainder, disjoint shares per input pipeline,
resumable by skipping consumed records before any pixel work. TFDS hands us decoded
pixels, so the random-resized crop slices decoded images (no fused JPEG kernel), and
evaluation uses `preprocess_decoded_for_eval`, the same pixels as serving.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import tensorflow as tf
import tensorflow_datasets as tfds

from visiontrain.config import DataConfig
from visiontrain.pipelines import datasets, preprocess
from visiontrain.pipelines.tfds_source import _feature_keys

PREFIX = "tfds:"
AUTOTUNE = tf.data.AUTOTUNE
_SPLITS = {"train": "train", "validation": "validation"}


def tfds_spec(data_dir: str) -> str:
    """"NAME[/CONFIG]" from a `tfds:NAME[/CONFIG]` data_dir, or "" for a shard directory."""
    return data_dir[len(PREFIX):] if data_dir.startswith(PREFIX) else ""


@dataclasses.dataclass(frozen=True)
class _Share:
    read_config_context: tf.distribute.InputContext | None
    record_shard: tuple[int, int] | None
    num_records: int


class TfdsInput:
    """Training and evaluation datasets straight from a prepared TFDS dataset."""

    def __init__(self, config: DataConfig):
        spec = tfds_spec(config.data_dir)
        try:
            self.builder = tfds.builder(spec, data_dir=config.tfds_data_dir or None)
        except Exception as err:  # tfds raises several types for a bad name.
            raise ValueError(f"unknown TFDS dataset {spec!r} ({err}); check --data_dir") from err
        self.config = config
        self.image_key, self.label_key = _feature_keys(self.builder)
        self.labels = list(self.builder.info.features[self.label_key].names)

    def preflight(self) -> None:
        """Refuses an unprepared dataset or one without train and validation splits."""
        if not self.builder.is_prepared():
            raise ValueError(
                f"TFDS dataset {self.builder.name} is not prepared in {self.builder.data_dir}; "
                "run `tfds build NAME --data_dir=DIR` and pass --tfds_data_dir=DIR"
            )
        missing = [s for s in _SPLITS.values() if s not in self.builder.info.splits]
        if missing:
            raise ValueError(
                f"TFDS dataset {self.builder.name} lacks split(s) {missing}; it has "
                f"{sorted(self.builder.info.splits)}. Convert it with visiontrain-data build, "
                "which splits validation off train."
            )

    @property
    def digest(self) -> str:
        """sha256 of the dataset's name, version and per-file record counts."""
        splits = {s: list(self.builder.info.splits[s].shard_lengths) for s in _SPLITS.values()}
        ident = [self.builder.info.full_name, splits]
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()

    def _share(self, split: str, num_pipelines: int, pipeline_id: int) -> _Share:
        lengths = list(self.builder.info.splits[split].shard_lengths)
        if len(lengths) >= num_pipelines:
            # TFDS deals files round-robin over the input context, like our reader.
            context = tf.distribute.InputContext(num_pipelines, pipeline_id, num_pipelines)
            return _Share(context, None, sum(lengths[pipeline_id::num_pipelines]))
        total = sum(lengths)
        return _Share(None, (num_pipelines, pipeline_id),
                      len(range(pipeline_id, total, num_pipelines)))

    def steps_per_epoch(self, global_batch_size: int, num_pipelines: int = 1) -> int:
        """Steps per epoch; the pipeline with the fewest records sets the pace."""
        per_pipeline = global_batch_size // num_pipelines
        fewest = min(self._share("train", num_pipelines, p).num_records
                     for p in range(num_pipelines))
        if fewest < per_pipeline:
            raise ValueError(
                f"An epoch of {fewest} records per input pipeline is smaller than one batch "
                f"of {per_pipeline}; lower --global_batch_size."
            )
        return fewest // per_pipeline

    def _examples(self, split: str, share: _Share, seed: int, shuffle: bool) -> tf.data.Dataset:
        options = tf.data.Options()
        # The record order must be reproducible: resume skips a prefix of it.
        options.deterministic = True
        read_config = tfds.ReadConfig(
            input_context=share.read_config_context,
            shuffle_seed=seed,
            interleave_cycle_length=8,
            add_tfds_id=True,
            options=options,
        )
        dataset = self.builder.as_dataset(
            split=split, read_config=read_config, shuffle_files=shuffle and not share.record_shard
        )
        if share.record_shard:
            dataset = dataset.shard(*share.record_shard)
        return dataset

    def train_dataset(
        self,
        *,
        epoch: int,
        batch_size: int,
        records_per_epoch: int,
        start_record: int = 0,
        num_pipelines: int = 1,
        pipeline_id: int = 0,
        with_keys: bool = False,
    ) -> tf.data.Dataset:
        """One epoch of (uint8 [B, S, S, 3], int32 [B]) batches; see `make_train_dataset`."""
        config = self.config
        share = self._share("train", num_pipelines, pipeline_id)
        seed = datasets._epoch_seed(config.seed, epoch, pipeline_id)
        examples = datasets.drop_remainder(
            self._examples("train", share, seed % (2**31), shuffle=True),
            share.num_records, records_per_epoch, seed,
        )
        examples = examples.shuffle(config.shuffle_buffer, seed=seed,
                                    reshuffle_each_iteration=False)
        examples = examples.take(records_per_epoch).skip(start_record).enumerate(start_record)

        def crop(index, example):
            image = example[self.image_key]
            crop_seed = tf.stack([tf.constant(seed % (2**31), tf.int64), index])
            image = random_resized_crop(
                image, crop_seed, config.image_size,
                (config.crop_area_min, config.crop_area_max),
                (config.aspect_ratio_min, config.aspect_ratio_max),
            )
            return self._output(image, example, with_keys)

        batches = examples.map(crop, num_parallel_calls=AUTOTUNE)
        batches = batches.batch(batch_size, drop_remainder=True).prefetch(config.prefetch_batches)
        return batches.with_options(_options(config))

    def eval_dataset(
        self, *, batch_size: int, num_pipelines: int = 1, pipeline_id: int = 0,
        with_keys: bool = False,
    ) -> tf.data.Dataset:
        """Every validation example once, centre-cropped; the last partial batch kept."""
        config = self.config
        total = self.builder.info.splits["validation"].num_examples
        share = _Share(None, (num_pipelines, pipeline_id) if num_pipelines > 1 else None,
                       len(range(pipeline_id, total, num_pipelines)))

        def center(example):
            image = preprocess.preprocess_decoded_for_eval(
                example[self.image_key][None], config.image_size, config.eval_crop_fraction
            )[0]
            return self._output(image, example, with_keys)

        dataset = self._examples("validation", share, 0, shuffle=False).map(
            center, num_parallel_calls=AUTOTUNE
        )
        if config.cache_eval:
            dataset = dataset.cache()
        dataset = dataset.batch(batch_size).prefetch(config.prefetch_batches)
        return dataset.with_options(_options(config))

    def _output(self, image, example, with_keys):
        label = tf.cast(example[self.label_key], tf.int32)
        return (image, label, example["tfds_id"]) if with_keys else (image, label)

    def log_sharding(self, num_pipelines: int) -> None:
        """Says once how the TFDS files are split across input pipelines."""
        share = self._share("train", num_pipelines, 0)
        policy = "record" if share.record_shard else "file"
        tf.get_logger().info("TFDS input sharding: by %s over %d input pipelines.",
                             policy, num_pipelines)


def _options(config: DataConfig) -> tf.data.Options:
    # TFDS's interleave follows the dataset-wide setting, and pipelines sharding by
    # record must all see one record order: --deterministic=false cannot apply here.
    return datasets.dataset_options(dataclasses.replace(config, deterministic=True))


def random_resized_crop(
    image: tf.Tensor,
    seed: tf.Tensor,
    image_size: int,
    area_range: tuple[float, float],
    aspect_ratio_range: tuple[float, float],
) -> tf.Tensor:
    """Inception-style random-resized crop of a decoded uint8 image [H, W, 3], stateless."""
    return preprocess.resize_uint8(
        preprocess.random_crop_decoded(image, seed, area_range, aspect_ratio_range), image_size
    )

