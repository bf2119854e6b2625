"""Transfer learning end to end through `loop.train`: pretrain, fine-tune, resume in phase 2."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.shards import write_dataset
from visiontrain.config import DataConfig, ModelConfig, TrainConfig
from visiontrain.models.registry import build_model
from visiontrain.training import loop, transfer

pytestmark = pytest.mark.slow


def _digits(classes, train_per_class, seed=0):
    """Digit scans of `classes` upscaled to 16x16 RGB: (train, val) split per class."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    images = np.repeat(np.repeat(images, 2, 1), 2, 2)[..., None].repeat(3, -1)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label, digit in enumerate(classes):
        members = rng.permutation(np.flatnonzero(digits.target == digit))
        cut = train_per_class or len(members) * 4 // 5
        train += [(i, label) for i in members[:cut]]
        val += [(i, label) for i in members[cut:]]

    def pack(pairs):
        index, labels = zip(*(pairs[i] for i in rng.permutation(len(pairs))))
        return images[list(index)], np.array(labels)

    return pack(train), pack(val), [str(d) for d in classes]


def _data(tmp, name, classes, per_class, batch):
    train, val, names = _digits(classes, per_class)
    write_dataset(str(tmp / name), train, val, names)
    return DataConfig(data_dir=str(tmp / name), image_size=16, global_batch_size=batch,
                      crop_area_min=0.7, eval_crop_fraction=1.0)


def _train(data, model, config):
    keras.utils.set_random_seed(config.seed)
    return loop.train(data, model, config, tf.distribute.OneDeviceStrategy("/cpu:0"))


def test_pretrained_backbone_beats_scratch_on_few_images(tmp_path):
    source = _data(tmp_path, "d04", range(5), 0, 32)
    model = ModelConfig(name="small_cnn")
    pretrain = TrainConfig(run_dir=str(tmp_path / "pre"), epochs=4, base_lr=0.8, warmup_epochs=1,
                           checkpoint_every_steps=0, steps_per_loop=20, eval_every=4)
    result = _train(source, model, pretrain)
    assert result["validation"]["accuracy"] > 0.8
    trained = build_model(dataclasses.replace(model, num_classes=5), 16)
    tf.train.Checkpoint(model=trained).restore(result["checkpoint"]).expect_partial()
    weights = str(tmp_path / "digits04.weights.h5")
    trained.save_weights(weights)

    target = _data(tmp_path, "d59", range(5, 10), 10, 10)
    # A linear head on frozen features takes a high LR; scratch gets the LR that suits it.
    fine_tune = TrainConfig(run_dir=str(tmp_path / "ft"), epochs=8, base_lr=4.0,
                            freeze_epochs=4, fine_tune_lr=0.4, fine_tune_warmup_epochs=1,
                            checkpoint_every_steps=0, steps_per_loop=5, eval_every=8)
    tuned = _train(target, dataclasses.replace(model, pretrained=weights), fine_tune)
    scratch = _train(target, model, dataclasses.replace(
        fine_tune, run_dir=str(tmp_path / "scratch"), freeze_epochs=0, base_lr=0.8))
    tuned_acc, scratch_acc = tuned["validation"]["accuracy"], scratch["validation"]["accuracy"]
    print(f"digits 5-9, 10 images/class, {tuned['step']} steps: fine-tuned {tuned_acc:.3f}, "
          f"scratch {scratch_acc:.3f}")
    assert tuned["step"] == scratch["step"] == 40
    assert tuned_acc >= scratch_acc + 0.10


class _Killed(Exception):
    pass


def test_kill_in_phase_two_resumes_with_its_trainable_set_and_exact_steps(tmp_path, monkeypatch):
    data = _data(tmp_path, "d59", range(5, 10), 10, 10)
    model = ModelConfig(name="small_cnn")
    config = TrainConfig(run_dir=str(tmp_path / "killed"), epochs=3, freeze_epochs=1,
                         unfreeze="last:2", layer_decay=0.7, fine_tune_lr=0.4,
                         fine_tune_warmup_epochs=1, base_lr=0.8, steps_per_loop=2,
                         checkpoint_every_steps=4, eval_every=3)
    enter_phase = transfer.enter_phase
    calls = []

    def recording(model, plan, step, active, kill_at=None):
        if kill_at is not None and step >= kill_at:
            raise _Killed(step)
        phase = enter_phase(model, plan, step, active)
        calls.append((step, phase, sorted(v.path for v in model.trainable_variables)))
        return phase

    monkeypatch.setattr(transfer, "enter_phase", recording)
    whole = _train(data, model, dataclasses.replace(config, run_dir=str(tmp_path / "whole")))
    phase_two_set = next(c[2] for c in calls if c[1] == transfer.PHASE_FINE_TUNE)
    assert [c[1] for c in calls if c[0] < 5] == [1] * 3 and 5 in [c[0] for c in calls]

    monkeypatch.setattr(transfer, "enter_phase",
                        lambda *args: recording(*args, kill_at=9))
    with pytest.raises(_Killed):
        _train(data, model, config)
    calls.clear()
    monkeypatch.setattr(transfer, "enter_phase", recording)
    resumed = _train(data, model, config)
    assert calls[0][:2] == (8, transfer.PHASE_FINE_TUNE)
    assert calls[0][2] == phase_two_set
    assert all(p.startswith(("stage2_", "stage3_", "logits")) for p in phase_two_set)
    assert resumed["step"] == whole["step"] == 15
    for key in ("loss", "accuracy"):
        assert resumed["validation"][key] == pytest.approx(whole["validation"][key], abs=1e-4)
