"""Multi-label end to end on real images: composites of two digit scans, labelled with both
digits, built from a label file, trained with per-class sigmoid BCE, scored by mAP, its
thresholds tuned by visiontrain-evaluate and baked into the export, which names both
digits of a held-out composite."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.composites import held_out_png, write_composite_label_file
from tests.helpers.runs import env
from visiontrain.config import ConvertConfig, DataConfig, ModelConfig, TrainConfig
from visiontrain.evaluation import multilabel, predictors
from visiontrain.pipelines import datasets, make_tfrecords, record_sources
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


@pytest.fixture(scope="module")
def trained(composites, tmp_path_factory):
    data = DataConfig(data_dir=composites, image_size=16, global_batch_size=32,
                      crop_area_min=0.8, eval_crop_fraction=1.0, shuffle_buffer=512)
    config = TrainConfig(run_dir=str(tmp_path_factory.mktemp("runs") / "run"), epochs=8,
                         base_lr=0.8, seed=0, deterministic=True, checkpoint_every_steps=0,
                         steps_per_loop=30, eval_every=8, label_smoothing=0.1, warmup_epochs=1)
    keras.utils.set_random_seed(0)
    result = loop.train(data, ModelConfig(name="small_cnn"), config,
                        tf.distribute.OneDeviceStrategy("/cpu:0"))
    return config.run_dir, result


def test_the_reader_gives_multi_hot_labels(composites):
    reader = datasets.make_reader(DataConfig(data_dir=composites, image_size=16))
    assert reader.multi_label
    images, labels = next(iter(reader.eval_dataset(batch_size=8)))
    assert labels.shape == (8, CLASSES) and labels.dtype == tf.int32
    assert set(np.asarray(labels).sum(1).tolist()) <= {1, 2}


def test_multi_label_training_reaches_map_well_above_the_label_prior(composites, trained):
    run_dir, result = trained
    print(f"multi-label validation: {result['validation']}")
    assert set(result["validation"]) >= {"micro_f1", "macro_f1", "accuracy", "loss"}
    run = rundir.load_run(run_dir)
    assert rundir.read_json(f"{run_dir}/config.json")["train"]["loss"] == "bce"
    scores, truth = predictors.collect_scores(
        predictors.model_predictor(run.model, run.data, multi_label=True),
        record_sources.encoded_records(composites, "validation", 64))
    report = multilabel.summarize(scores, truth, run.labels,
                                  multilabel.tune_thresholds(scores, truth))
    print(multilabel.format_report(report))
    assert report["mAP"] > report["label_prior_mAP"] + 0.3


def _tool(name, *flags):
    done = subprocess.run([sys.executable, "-m", f"visiontrain.tools.{name}", *flags], env=env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout
    return done.stdout


def test_evaluate_tunes_thresholds_and_the_export_names_both_digits(trained, tmp_path):
    run_dir, _ = trained
    export_dir = str(tmp_path / "export")
    # Export refuses until thresholds are tuned.
    refused = subprocess.run([sys.executable, "-m", "visiontrain.tools.export",
                              f"--run_dir={run_dir}", f"--export_dir={export_dir}"], env=env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert refused.returncode == 2 and "visiontrain-evaluate --run_dir=" in refused.stdout
    printed = _tool("evaluate", f"--run_dir={run_dir}", f"--output={tmp_path}/report.json")
    print(printed)
    report = json.load(open(tmp_path / "report.json"))
    assert report["task"] == "multi_label" and report["mAP"] > 0.9
    assert os.path.exists(tmp_path / "per_label_ap.png")
    thresholds = json.load(open(os.path.join(run_dir, rundir.THRESHOLDS)))
    assert thresholds["rule"] == "max F1" and len(thresholds["thresholds"]) == CLASSES
    print(_tool("export", f"--run_dir={run_dir}", f"--export_dir={export_dir}"))
    version = os.path.join(export_dir, "1")
    metadata = json.load(open(os.path.join(version, "assets.extra", "visiontrain.json")))
    assert metadata["task"] == "multi_label" and metadata["thresholds"] == thresholds
    serve = tf.saved_model.load(version).signatures["serving_default"]
    answer = serve(image_bytes=tf.constant([held_out_png(1, 3), held_out_png(4, 0)]))
    named = [[v.decode() for v in row if v] for row in answer["labels"].numpy()]
    print(f"held-out composites (1, 3) and (4, 0): {named}")
    assert [sorted(row) for row in named] == [["1", "3"], ["0", "4"]]
    assert answer["labels"].shape == (2, CLASSES)
    (tmp_path / "held_out.png").write_bytes(held_out_png(2, 4))
    printed = _tool("predict", f"--saved_model={version}", str(tmp_path / "held_out.png"))
    print(printed)
    assert "labels [2, 4]" in printed or "labels [4, 2]" in printed
