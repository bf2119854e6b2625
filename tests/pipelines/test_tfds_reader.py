"""TFDS as a direct training source, over a tiny builder prepared in tmp_path."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.helpers import shards
from tests.helpers.tfds_builders import NUM_VAL, TinyShapes
from visiontrain.config import DataConfig
from visiontrain.pipelines import datasets, epoch_order, preprocess, tfds_reader


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    # Several files per split, so file sharding over 2 pipelines is possible.
    TinyShapes(data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(num_shards=3)
    )
    return data_dir


def _source(tfds_dir, **kw):
    config = DataConfig(data_dir="tfds:tiny_shapes", tfds_data_dir=tfds_dir, image_size=8,
                        shuffle_buffer=4, **kw)
    source = datasets.make_reader(config)
    source.preflight()
    return source


def test_spec_parsing():
    assert tfds_reader.tfds_spec("tfds:mnist/3.0.1") == "mnist/3.0.1"
    assert tfds_reader.tfds_spec("/data/shards") == ""


def test_labels_digest_and_file_count(tfds_dir):
    source = _source(tfds_dir)
    assert source.labels == ["x", "y", "z"]
    assert len(source.identity["sha256"]) == 64 and source.identity["described"].startswith("TFDS ")
    assert len(source.source.files("train")) >= 2


@pytest.mark.parametrize("num_pipelines", [1, 2])
def test_every_example_once_per_epoch(tfds_dir, num_pipelines):
    source = _source(tfds_dir)
    assert epoch_order.pipeline_share(source.source.files("train"), num_pipelines,
                                   0).policy == "file"
    seen = [k for p in range(num_pipelines)
            for k in shards.epoch_keys(source, epoch=0, batch=2, num_pipelines=num_pipelines,
                           pipeline_id=p)]
    assert len(seen) == len(set(seen))
    assert len(seen) == source.steps_per_epoch(2 * num_pipelines, num_pipelines) * 2 * (
        num_pipelines)


def test_a_batch_larger_than_a_pipeline_share_is_refused(tfds_dir):
    with pytest.raises(ValueError, match="lower --global_batch_size"):
        _source(tfds_dir).steps_per_epoch(64, 2)


def test_record_sharding_when_files_are_fewer_than_pipelines(tfds_dir):
    source = _source(tfds_dir)
    files = len(source.source.files("train"))
    assert epoch_order.pipeline_share(source.source.files("train"), files + 1,
                                   0).policy == "record"
    seen = [k for p in range(files + 1)
            for k in shards.epoch_keys(source, epoch=0, batch=1, num_pipelines=files + 1,
                                       pipeline_id=p)]
    assert len(seen) == len(set(seen))


def test_resume_and_varying_remainder(tfds_dir):
    source = _source(tfds_dir)
    full = shards.epoch_keys(source, epoch=1, batch=4)
    assert shards.epoch_keys(source, epoch=1, batch=4, start_record=8) == full[8:]
    all_ids = set()
    dropped = []
    for epoch in range(6):
        seen = set(shards.epoch_keys(source, epoch=epoch, batch=4))
        all_ids |= seen
        dropped.append(seen)
    missing_each = [frozenset(all_ids - s) for s in dropped]
    assert len(set(missing_each)) > 1


def test_eval_reads_every_example_once(tfds_dir):
    source = _source(tfds_dir)
    seen = []
    for p in range(2):
        ds = source.eval_dataset(batch_size=2, num_pipelines=2, pipeline_id=p, with_keys=True)
        seen += [k.decode() for _, _, keys in ds for k in keys.numpy()]
    assert len(seen) == NUM_VAL == len(set(seen))


def test_eval_matches_preprocess_for_eval_on_png(tfds_dir):
    # Compared as sorted sets: TFDS's own reader interleaves files, ours reads them in order.
    source = _source(tfds_dir)
    raws = source.source.builder.as_dataset(split="validation", shuffle_files=False)
    expected = [preprocess.preprocess_for_eval(tf.io.encode_png(raw["image"]), 8, 0.875).numpy()
                for raw in raws]
    images = np.concatenate([b.numpy() for b, _ in source.eval_dataset(batch_size=2)])
    assert len(images) == len(expected) == NUM_VAL
    np.testing.assert_array_equal(_sorted(images), _sorted(np.stack(expected)))


def _sorted(images):
    return images[np.lexsort(images.reshape(len(images), -1).T)]


def test_unprepared_or_unknown_dataset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not prepared"):
        tfds_reader.TfdsSource("tiny_shapes", str(tmp_path)).preflight()
    with pytest.raises(ValueError, match="unknown TFDS dataset 'no_such_set'"):
        tfds_reader.TfdsSource("no_such_set")
