"""Multi-label end to end on real images: composites of two digit scans, labelled with both
digits, built from a label file, trained with per-class sigmoid BCE, and scored by mAP."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.composites import write_composite_label_file
from visiontrain.config import ConvertConfig, DataConfig, ModelConfig, TrainConfig
from visiontrain.evaluation import multilabel, predictors
from visiontrain.pipelines import datasets, make_tfrecords
from visiontrain.training import loop, rundir

pytestmark = pytest.mark.slow
CLASSES = 5


@pytest.fixture(scope="module")
def composites(tmp_path_factory):
    root = tmp_path_factory.mktemp("composites")
    label_file = write_composite_label_file(str(root / "src"), 1200, CLASSES)
    make_tfrecords.build(ConvertConfig(source=label_file, output=str(root / "data"),
                                       val_fraction=0.2, num_workers=1, num_shards=2))
    return str(root / "data")


def test_the_reader_gives_multi_hot_labels(composites):
    reader = datasets.make_reader(DataConfig(data_dir=composites, image_size=16))
    assert reader.multi_label
    images, labels = next(iter(reader.eval_dataset(batch_size=8)))
    assert labels.shape == (8, CLASSES) and labels.dtype == tf.int32
    assert set(np.asarray(labels).sum(1).tolist()) <= {1, 2}


def test_multi_label_training_reaches_map_well_above_the_label_prior(composites, tmp_path):
    data = DataConfig(data_dir=composites, image_size=16, global_batch_size=32,
                      crop_area_min=0.8, eval_crop_fraction=1.0, shuffle_buffer=512)
    config = TrainConfig(run_dir=str(tmp_path / "run"), epochs=8, base_lr=0.8, seed=0,
                         deterministic=True, checkpoint_every_steps=0, steps_per_loop=30,
                         eval_every=8, label_smoothing=0.1, warmup_epochs=1)
    keras.utils.set_random_seed(0)
    result = loop.train(data, ModelConfig(name="small_cnn"), config,
                        tf.distribute.OneDeviceStrategy("/cpu:0"))
    print(f"multi-label validation: {result['validation']}")
    assert set(result["validation"]) >= {"micro_f1", "macro_f1", "accuracy", "loss"}
    model, labels, data, _ = rundir.load_run(config.run_dir)
    assert rundir.read_json(f"{config.run_dir}/config.json")["train"]["loss"] == "bce"
    scores, truth = predictors.collect_scores(
        predictors.model_predictor(model, data, multi_label=True),
        datasets.encoded_records(composites, "validation", 64))
    report = multilabel.summarize(scores, truth, labels,
                                  multilabel.tune_thresholds(scores, truth))
    print(multilabel.format_report(report))
    assert report["mAP"] > report["label_prior_mAP"] + 0.3
