"""Checkpoints from before the random-layer states were kept (no "rng") still resume."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.runs import checkpoint_steps, run_train
from visiontrain.config import ModelConfig, TrainConfig
from visiontrain.models import build_model
from visiontrain.training import checkpoints
from visiontrain.training.checkpoints import RunCheckpoints

IMAGES = np.full((16, 8, 8, 3), 100.0, np.float32)


def fresh_run(run_dir: str, accum: int = 1):
    """A model as the loop builds it (seeded first), with its optimizer and checkpoints."""
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig("small_cnn", num_classes=3, dropout=0.5), 8)
    optimizer = keras.optimizers.SGD(0.1)
    ckpt = RunCheckpoints(TrainConfig(run_dir=run_dir, grad_accum_steps=accum), model,
                          optimizer, tf.distribute.get_strategy(), chief=True)
    return model, optimizer, ckpt


def masks(model) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(IMAGES, training=True))


@pytest.mark.parametrize("accum", [1, 2])
def test_an_old_checkpoint_without_rng_resumes_with_the_draws_of_an_uninterrupted_run(
        tmp_path, absl_caplog, accum):
    model, optimizer, ckpt = fresh_run(str(tmp_path), accum)
    assert ckpt.rng, "the model must have a random layer for this test"
    for _ in range(3 * accum):  # Three steps of `accum` micro-batches each.
        masks(model)
    for variable in model.trainable_variables:  # Trained: unlike a fresh build's.
        variable.assign_add(tf.fill(variable.shape, 0.01))
    # The checkpoint an earlier visiontrain wrote: model, optimizer and step, no rng.
    old = tf.train.Checkpoint(model=model, optimizer=optimizer, step=ckpt.step_var)
    ckpt.step_var.assign(3)
    path = tf.train.CheckpointManager(old, ckpt.directory, 5).save(checkpoint_number=3)
    assert not checkpoints.holds(path, checkpoints.RNG)
    want = masks(model)

    model, _, ckpt = fresh_run(str(tmp_path), accum)
    assert ckpt.restore_latest() == 3
    np.testing.assert_array_equal(masks(model), want)
    assert "predates the random-layer states" in absl_caplog.text
    # Saved again, the run's checkpoints now keep the states.
    assert checkpoints.holds(os.path.join(ckpt.directory, f"ckpt-{ckpt.save(4)}"),
                              checkpoints.RNG)


def test_a_new_checkpoint_restores_its_own_rng_silently(tmp_path, absl_caplog):
    model, _, ckpt = fresh_run(str(tmp_path))
    masks(model)
    ckpt.save(7)  # A state no step count explains: 1 draw by step 7.
    want = masks(model)
    model, _, ckpt = fresh_run(str(tmp_path))
    assert ckpt.restore_latest() == 7
    np.testing.assert_array_equal(masks(model), want)
    assert "predates" not in absl_caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("accum", [1, 2])
def test_a_run_draws_grad_accum_steps_times_per_step(digits, tmp_path, accum):
    """The count the restore of an old checkpoint relies on, in a real run: at every
    checkpoint each random layer's state is [seed, step x grad_accum_steps] (evaluation,
    the step-0 save and the loop's other calls draw nothing)."""
    run_dir = str(tmp_path / "run")
    result = run_train(digits, run_dir, "--epochs=1", "--dropout=0.5",
                       f"--grad_accum_steps={accum}", "--checkpoint_every_steps=4",
                       "--keep_checkpoints=10")
    assert result.returncode == 0, result.stdout[-3000:]
    steps = checkpoint_steps(run_dir)
    assert len(steps) >= 3, steps
    for step in steps:
        reader = tf.train.load_checkpoint(os.path.join(run_dir, "checkpoints", f"ckpt-{step}"))
        states = [reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
                  if key.startswith(f"{checkpoints.RNG}/")]
        assert states and all(state[1] == step * accum for state in states), (step, states)
