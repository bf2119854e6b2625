"""The loop's data position: exactly-once per-epoch coverage across a resume."""

from __future__ import annotations

import pytest

from visiontrain.config import DataConfig
from visiontrain.pipelines import datasets
from visiontrain.training.loop import epoch_position

BATCH = 64


@pytest.fixture(scope="module")
def source(digits):
    config = DataConfig(data_dir=digits, image_size=8, shuffle_buffer=64, seed=3)
    return datasets.make_reader(config)


def _keys(source, step, steps_per_epoch, per_pipeline, pipelines, pipeline_id, limit=None):
    dataset = source.train_dataset(
        **epoch_position(step, steps_per_epoch, per_pipeline), batch_size=per_pipeline,
        num_pipelines=pipelines, pipeline_id=pipeline_id, with_keys=True,
    )
    if limit is not None:
        dataset = dataset.take(limit)
    return [key for _, _, keys in dataset for key in keys.numpy().tolist()]


@pytest.mark.parametrize("pipelines", [1, 2])
def test_epoch_interrupted_and_resumed_covers_the_same_records_once(source, pipelines):
    per_pipeline = BATCH // pipelines
    steps_per_epoch = source.steps_per_epoch(BATCH, pipelines)
    epoch, k = 1, 5
    first_step = epoch * steps_per_epoch
    for pipeline_id in range(pipelines):
        full = _keys(source, first_step, steps_per_epoch, per_pipeline, pipelines, pipeline_id)
        before = _keys(source, first_step, steps_per_epoch, per_pipeline, pipelines,
                       pipeline_id, limit=k)
        after = _keys(source, first_step + k, steps_per_epoch, per_pipeline, pipelines,
                      pipeline_id)
        assert len(full) == len(set(full)) == steps_per_epoch * per_pipeline
        assert before + after == full


def test_epochs_differ_in_order(source):
    steps = source.steps_per_epoch(BATCH)
    assert _keys(source, 0, steps, BATCH, 1, 0) != _keys(source, steps, steps, BATCH, 1, 0)


def test_epoch_position():
    assert epoch_position(0, 23, 64) == {"epoch": 0, "records_per_epoch": 1472,
                                         "start_record": 0}
    assert epoch_position(30, 23, 32) == {"epoch": 1, "records_per_epoch": 736,
                                          "start_record": 224}
