"""Imbalanced digits (10:1): --class_weights=balanced and --sampling=balanced raise macro
recall over the unweighted run at the same steps, for two seeds; --loss=bce trains through
the same loop."""

import keras
import pytest
import tensorflow as tf

from tests.helpers.shards import imbalanced_digits
from visiontrain.config import DataConfig, ModelConfig, TrainConfig
from visiontrain.evaluation import metrics, predictors
from visiontrain.pipelines import datasets, record_sources
from visiontrain.training import loop, rundir

pytestmark = pytest.mark.slow

def macro_recall(run_dir: str) -> float:
    run = rundir.load_run(run_dir)
    records = record_sources.encoded_records(run.data.data_dir, "validation", 128)
    probabilities, truth, _ = predictors.collect(
        predictors.model_predictor(run.model, run.data), records)
    return metrics.summarize(probabilities, truth, run.labels)["macro_avg"]["recall"]


def train(data_dir, run_dir, seed, sampling="none", **options) -> float:
    data = DataConfig(data_dir=data_dir, image_size=8, global_batch_size=64, crop_area_min=0.7,
                      eval_crop_fraction=1.0, shuffle_buffer=256, seed=seed, sampling=sampling)
    config = TrainConfig(run_dir=run_dir, epochs=3, base_lr=0.4, seed=seed, deterministic=True,
                         checkpoint_every_steps=0, steps_per_loop=20, eval_every=3, **options)
    keras.utils.set_random_seed(seed)
    loop.train(data, ModelConfig(name="small_cnn"), config,
               tf.distribute.OneDeviceStrategy("/cpu:0"))
    return macro_recall(run_dir)


def test_balancing_raises_macro_recall_on_10_to_1_digits(tmp_path):
    """--class_weights=balanced and --sampling=balanced each beat the unweighted run."""
    data_dir = imbalanced_digits(str(tmp_path / "data"))
    counts = datasets.make_reader(DataConfig(data_dir=data_dir)).class_counts("train")
    assert counts["0"] >= 10 * counts["5"]
    for seed in (0, 1):
        plain = train(data_dir, str(tmp_path / f"plain{seed}"), seed)
        weighted = train(data_dir, str(tmp_path / f"weighted{seed}"), seed,
                         class_weights="balanced")
        sampled = train(data_dir, str(tmp_path / f"sampled{seed}"), seed, sampling="balanced")
        print(f"seed {seed}: macro recall unweighted {plain:.4f}, class_weights=balanced "
              f"{weighted:.4f}, sampling=balanced {sampled:.4f}")
        assert weighted > plain + 0.02 and sampled > plain + 0.02


def test_bce_loss_with_smoothing_and_mixup_trains_digits(digits, tmp_path):
    """The per-class sigmoid loss, composed with label smoothing and MixUp targets."""
    data = DataConfig(data_dir=digits, image_size=8, global_batch_size=64, crop_area_min=0.7,
                      eval_crop_fraction=1.0, shuffle_buffer=256)
    config = TrainConfig(run_dir=str(tmp_path / "bce"), epochs=4, base_lr=0.4, seed=0,
                         deterministic=True, checkpoint_every_steps=0, steps_per_loop=20,
                         eval_every=4, loss="bce", label_smoothing=0.1, augment="mixup:0.2")
    keras.utils.set_random_seed(0)
    result = loop.train(data, ModelConfig(name="small_cnn"), config,
                        tf.distribute.OneDeviceStrategy("/cpu:0"))
    print(f"bce: validation {result['validation']}")
    assert result["validation"]["accuracy"] > 0.8
