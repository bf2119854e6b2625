"""The shard reader: exactly-once epochs, sharding, resume, remainder, pre-flight."""

import collections
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import shards
from visiontrain.config import DataConfig
from visiontrain.pipelines import datasets, epoch_order, record_sources
from visiontrain.pipelines import manifest as manifest_lib

NAMES = ("a", "b", "c")
NUM_TRAIN = 23


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    return shards.write_shard_dirs(tmp_path_factory, NAMES, NUM_TRAIN, 7)


def _config(data_dir, **kw):
    return DataConfig(data_dir=data_dir, image_size=8, shuffle_buffer=4, **kw)


def _epoch_keys(data_dir, **kw):
    return shards.epoch_keys(datasets.make_reader(_config(data_dir)), **kw)


def _files(data_dir, split="train"):
    return record_sources.ShardSource(data_dir).files(split)


@pytest.mark.parametrize("num_shards,num_pipelines,policy", [
    (3, 1, "file"), (1, 1, "file"), (3, 2, "file"), (1, 2, "record"),
])
def test_every_example_once_per_epoch(data_dirs, num_shards, num_pipelines, policy):
    data_dir = data_dirs[num_shards]
    train = _files(data_dir)
    assert epoch_order.pipeline_share(train, num_pipelines, 0).policy == policy
    batch = 2
    per_pipeline = [_epoch_keys(data_dir, epoch=0, batch=batch, num_pipelines=num_pipelines,
                                pipeline_id=p) for p in range(num_pipelines)]
    seen = [k for keys in per_pipeline for k in keys]
    assert len(seen) == len(set(seen)), "an example was read twice in one epoch"
    assert set(seen) <= shards.split_keys("train", NUM_TRAIN)
    steps = epoch_order.steps_per_epoch(train, batch * num_pipelines, num_pipelines)
    assert len(seen) == steps * batch * num_pipelines


@pytest.mark.parametrize("num_shards,num_pipelines", [(3, 1), (3, 2), (1, 2)])
def test_resume_yields_exactly_the_rest_of_the_epoch(data_dirs, num_shards, num_pipelines):
    for p in range(num_pipelines):
        full = _epoch_keys(data_dirs[num_shards], epoch=1, batch=2,
                           num_pipelines=num_pipelines, pipeline_id=p)
        rest = _epoch_keys(data_dirs[num_shards], epoch=1, batch=2, start_record=4,
                           num_pipelines=num_pipelines, pipeline_id=p)
        assert rest == full[4:]


@pytest.mark.parametrize("num_shards,num_pipelines", [(3, 1), (1, 1), (3, 2)])
def test_dropped_remainder_differs_between_epochs(data_dirs, num_shards, num_pipelines):
    data_dir = data_dirs[num_shards]
    all_keys = shards.split_keys("train", NUM_TRAIN)
    dropped = collections.Counter()
    epochs = 8
    for epoch in range(epochs):
        seen = set()
        for p in range(num_pipelines):
            seen |= set(_epoch_keys(data_dir, epoch=epoch, batch=4,
                                    num_pipelines=num_pipelines, pipeline_id=p))
        dropped.update(all_keys - seen)
    # Batch 4 leaves a remainder of 3 (1 pipeline) or more (uneven files) every epoch;
    # over 8 epochs no record may be dropped every time.
    assert dropped and max(dropped.values()) < epochs


def test_remainder_mask_is_exact_and_seeded():
    masks = [epoch_order.remainder_mask(100, 90, seed).numpy() for seed in range(3)]
    assert all(m.sum() == 90 for m in masks)
    assert not np.array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[0], epoch_order.remainder_mask(100, 90, 0).numpy())
    with pytest.raises(ValueError, match="records_per_epoch=101 exceeds the 100"):
        epoch_order.remainder_mask(100, 101, 0)


def test_epoch_order_is_a_function_of_seed_and_epoch(data_dirs):
    a = _epoch_keys(data_dirs[3], epoch=2, batch=2)
    assert a == _epoch_keys(data_dirs[3], epoch=2, batch=2)
    assert a != _epoch_keys(data_dirs[3], epoch=3, batch=2)


@pytest.mark.parametrize("num_pipelines", [1, 2])
def test_eval_reads_every_record_once_and_keeps_the_last_batch(data_dirs, num_pipelines):
    data_dir = data_dirs[3]
    source = record_sources.ShardSource(data_dir)
    seen = []
    for p in range(num_pipelines):
        ds = datasets.make_eval_dataset(source, _config(data_dir), batch_size=3,
                                        num_pipelines=num_pipelines, pipeline_id=p,
                                        with_keys=True)
        seen += [k.decode() for _, _, keys in ds for k in keys.numpy()]
    assert sorted(seen) == sorted(shards.split_keys("validation", 7))


def test_options_turn_auto_shard_off_and_apply_threads(data_dirs):
    data_dir = data_dirs[3]
    config = _config(data_dir, deterministic=True, threadpool_size=3)
    ds = datasets.make_train_dataset(record_sources.ShardSource(data_dir), config, epoch=0,
                                     batch_size=2, records_per_epoch=22)
    options = ds.options()
    assert options.experimental_distribute.auto_shard_policy == (
        tf.data.experimental.AutoShardPolicy.OFF)
    assert options.deterministic is True
    assert options.threading.private_threadpool_size == 3


def test_no_auto_shard_warning_under_a_strategy(data_dirs, caplog):
    data_dir = data_dirs[3]
    strategy = tf.distribute.get_strategy()
    dist = strategy.experimental_distribute_dataset(
        datasets.make_train_dataset(record_sources.ShardSource(data_dir), _config(data_dir),
                                    epoch=0, batch_size=2, records_per_epoch=22))
    with caplog.at_level(logging.WARNING):
        next(iter(dist))
    assert not [r for r in caplog.records if "AutoShardPolicy" in r.getMessage()]


def test_log_sharding_says_why(data_dirs, caplog):
    data_dir = data_dirs[1]
    with caplog.at_level(logging.INFO):
        datasets.log_sharding(_files(data_dir), 2)
    assert "by record, because 1 files are fewer than 2" in caplog.text


def test_steps_per_epoch_refuses_a_batch_larger_than_the_data(data_dirs):
    with pytest.raises(ValueError, match="lower --global_batch_size"):
        epoch_order.steps_per_epoch(_files(data_dirs[3]), 64, 1)


def test_unknown_split_is_named(data_dirs):
    with pytest.raises(ValueError, match="no split 'test'"):
        _files(data_dirs[3], "test")


@pytest.mark.parametrize("damage", ["truncate", "alter", "remove"])
def test_preflight_refuses_a_bad_shard_by_name(data_dirs, tmp_path, damage):
    import shutil

    data_dir = str(tmp_path / "copy")
    shutil.copytree(data_dirs[3], data_dir)
    manifest = manifest_lib.load_manifest(data_dir)
    name = manifest["splits"]["train"]["shards"][1]["file"]
    path = os.path.join(data_dir, name)
    data = open(path, "rb").read()
    if damage == "truncate":
        open(path, "wb").write(data[:-20])
    elif damage == "alter":
        open(path, "wb").write(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    else:
        os.remove(path)
    with pytest.raises(ValueError, match=name):
        manifest_lib.preflight(data_dir, ["train", "validation"], check_sha256=True)
    if damage != "alter":
        with pytest.raises(ValueError, match=name):
            manifest_lib.preflight(data_dir, ["train", "validation"], check_sha256=False)


def test_training_pixels_are_the_seeded_crop_of_each_record(data_dirs):
    """Every image is preprocess_for_train of its record, seeded by (epoch seed, position).

    Across a resume and an epoch boundary of one dataset. Guards the once-traced
    preprocessing and the in-graph epoch seed against drifting from the eager functions.
    """
    from visiontrain.pipelines import preprocess, schema

    data_dir, epoch, resume_at, per_epoch = data_dirs[3], 2, 4, 10
    config = _config(data_dir)
    source = datasets.make_reader(config)
    encoded = {}
    for record in tf.data.TFRecordDataset([f.path for f in _files(data_dir)]):
        features = schema.parse_example(record)
        encoded[features[schema.SHA256].numpy().decode()] = features[schema.ENCODED]
    dataset = source.train_dataset(epoch=epoch, batch_size=2, records_per_epoch=per_epoch,
                                   start_record=resume_at, epochs=2, with_keys=True)
    position = epoch * per_epoch + resume_at
    for images, _, keys in dataset:
        for image, key in zip(images.numpy(), keys.numpy()):
            this_epoch, in_epoch = divmod(position, per_epoch)
            seed = int(epoch_order.epoch_seed(config.seed, this_epoch, 0))
            expected = preprocess.preprocess_for_train(
                encoded[key.decode()], tf.constant([seed, in_epoch], tf.int64), 8,
                (config.crop_area_min, config.crop_area_max),
                (config.aspect_ratio_min, config.aspect_ratio_max),
            )
            np.testing.assert_array_equal(image, expected.numpy())
            position += 1
    assert position == (epoch + 2) * per_epoch


@pytest.mark.parametrize("num_shards,num_pipelines", [(3, 1), (3, 2), (1, 2)])
def test_one_dataset_over_epochs_is_the_epochs_one_after_another(
        data_dirs, num_shards, num_pipelines):
    reader = datasets.make_reader(_config(data_dirs[num_shards]))
    steps = reader.steps_per_epoch(2 * num_pipelines, num_pipelines)
    for p in range(num_pipelines):
        def keys(epoch, epochs, start_record=0, p=p):
            dataset = reader.train_dataset(
                epoch=epoch, epochs=epochs, batch_size=2, records_per_epoch=steps * 2,
                start_record=start_record, num_pipelines=num_pipelines, pipeline_id=p,
                with_keys=True)
            return [k for _, _, batch in dataset for k in batch.numpy().tolist()]

        separate = keys(1, 1, start_record=4) + keys(2, 1) + keys(3, 1)
        assert keys(1, 3, start_record=4) == separate
        assert len(separate) == 3 * steps * 2 - 4


@pytest.mark.parametrize("num_shards,num_pipelines", [(3, 1), (3, 2), (1, 2)])
def test_aug_repeats_reads_each_record_n_times_in_an_epoch_of_the_same_length(
        data_dirs, num_shards, num_pipelines):
    """DeiT's repeated augmentation: the exactly-once rule becomes exactly-N-times.

    An epoch keeps its length R: ceil(R / 3) distinct records, each 3 times, except the
    fewer than 3 overflowing copies; a resume yields exactly the rest of the epoch.
    """
    reader = datasets.make_reader(_config(data_dirs[num_shards], aug_repeats=3))
    for p in range(num_pipelines):
        keys = shards.epoch_keys(reader, epoch=2, batch=2, num_pipelines=num_pipelines,
                                 pipeline_id=p)
        counts = collections.Counter(keys)
        assert len(counts) == epoch_order.distinct_records(len(keys), 3)
        assert max(counts.values()) == 3
        assert 3 * len(counts) - len(keys) == sum(3 - c for c in counts.values()) < 3
        rest = shards.epoch_keys(reader, epoch=2, batch=2, start_record=4,
                                 num_pipelines=num_pipelines, pipeline_id=p)
        assert rest == keys[4:]
    # Each copy is cropped at its own position in the epoch: the copies differ.
    copies = collections.defaultdict(list)
    for image, _, key in reader.train_dataset(epoch=0, batch_size=1, records_per_epoch=12,
                                              with_keys=True).unbatch():
        copies[key.numpy()].append(image.numpy())
    assert all(len(images) == 3 for images in copies.values()) and len(copies) == 4
    assert all(not np.array_equal(images[0], images[1]) for images in copies.values())


def test_aug_repeats_is_not_built_for_the_data_service():
    with pytest.raises(ValueError, match="--aug_repeats=2 is not built for --tf_data_service"):
        DataConfig(data_dir="d", aug_repeats=2, tf_data_service="grpc://host:5050")


def test_preflight_warns_of_classes_without_training_records(tmp_path, caplog):
    """Shards built with --allow_untrained_classes (or before the build refused them) still
    train, but the log names the outputs that never will (issue 23.2)."""
    images = np.random.default_rng(0).integers(0, 256, (4, 12, 10, 3), np.uint8)
    shards.write_dataset(str(tmp_path), (images, np.array([0, 1, 0, 1])),
                         (images[:3], np.array([0, 1, 2])), NAMES, num_shards=1)
    with caplog.at_level(logging.WARNING):
        datasets.make_reader(_config(str(tmp_path))).preflight()
    assert f"1 class(es) have no training records in {tmp_path}: c;" in caplog.text


def test_untrained_classes_come_from_the_counts_or_the_recorded_list():
    counted = {"labels": ["a", "b"], "splits": {"train": {"class_counts": {"a": 3, "b": 0}}}}
    assert manifest_lib.untrained_classes(counted) == ["b"]
    # No per-split counts: the list the build recorded is all there is.
    recorded = {"labels": ["a", "b"], "splits": {"train": {}}, "untrained_classes": ["b"]}
    assert manifest_lib.untrained_classes(recorded) == ["b"]
    assert manifest_lib.untrained_classes({"labels": ["a"], "splits": {}}) == []
