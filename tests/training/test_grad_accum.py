"""Gradient accumulation: K micro-batches of B are one optimizer step on K*B images.

The equality holds with BatchNorm frozen (inference mode, as --freeze_bn and the head-only
phase run it): trainable BatchNorm normalises each micro-batch with its own statistics, so
there K micro-batches differ from one batch by design, as in timm and PyTorch.
"""

from __future__ import annotations

import json
import os
import re
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.runs import (
    checkpoint_steps,
    model_weights,
    run_train,
    start_train,
    step_and_iterations,
)
from visiontrain.training import steps

BATCH, K, STEPS = 16, 4, 3


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    bn = keras.layers.BatchNormalization()
    bn.trainable = False  # Frozen: inference-mode statistics, the same for any batch split.
    x = keras.layers.GlobalAveragePooling2D()(bn(x))
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def train_weights(accum_steps: int) -> tuple[list[np.ndarray], float]:
    """Weights after STEPS optimizer steps of BATCH images, in accum_steps micro-batches."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (STEPS * BATCH, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, STEPS * BATCH).astype(np.int32)
    model = tiny_model()
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-2)
    step_fn = steps.make_train_step(model, optimizer, num_classes=10, global_batch_size=BATCH,
                                    label_smoothing=0.1, accum_steps=accum_steps)
    strategy = tf.distribute.get_strategy()
    train_steps = steps.make_multi_step(strategy, step_fn)
    iterator = iter(tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH))
    loss_sum, correct = train_steps(iterator, tf.constant(STEPS), tf.constant(0), None)
    assert int(optimizer.iterations) == STEPS
    assert 0 < float(loss_sum) and 0 <= float(correct) <= STEPS * BATCH
    return [w.numpy() for w in model.weights], float(loss_sum)


def test_k_micro_batches_equal_one_batch_of_k_times_b():
    (one, one_loss), (accumulated, accumulated_loss) = train_weights(1), train_weights(K)
    assert accumulated_loss == pytest.approx(one_loss, rel=1e-5)
    for want, got in zip(one, accumulated):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("unroll", [False, True])
def test_accumulate_sums_the_slices_and_numbers_their_augmentation(unroll):
    seen = []

    def gradients(images, labels, step):
        seen.append(step)
        return [tf.reduce_sum(images), None], tf.reduce_sum(labels), tf.constant(1.0)

    variables = [tf.Variable(0.0), tf.Variable([0.0, 0.0])]
    grads, loss_sum, correct = steps.accumulate(
        gradients, variables, tf.range(6, dtype=tf.float32), tf.ones([6]), tf.constant(5), 3,
        unroll=unroll)
    assert float(grads[0]) == 15.0 and grads[1].numpy().tolist() == [0.0, 0.0]
    assert float(loss_sum) == 6.0 and float(correct) == 3.0
    # Micro-step numbers of step 5: (5 - 1) * 3 + 1 ... + 3.
    assert [int(step) for step in seen] == [13, 14, 15]


# Synchronised BN takes the unrolled window (its all-reduce cannot sit in a while loop).
ACCUM = ("--global_batch_size=32", "--grad_accum_steps=2", "--epochs=2", "--steps_per_loop=2",
         "--checkpoint_every_steps=4", "--cpu_replicas=2", "--sync_bn")


@pytest.mark.slow
def test_kill_9_inside_an_accumulation_window_resumes_bit_identical(digits, tmp_path):
    """The window lives inside one compiled step: a kill during it resumes by redoing it."""
    reference = str(tmp_path / "reference")
    result = run_train(digits, reference, *ACCUM)
    assert result.returncode == 0, result.stdout[-3000:]
    # 1500 digits, 64 per optimizer step (2 x 32): 23 steps per epoch, as with batch 64.
    assert "46 steps (23 per epoch, global batch 64 = 2 micro-batches of 32" in result.stdout
    final = os.path.join(reference, "checkpoints", "ckpt-46")
    assert step_and_iterations(final) == (46, 46)

    run_dir, log = str(tmp_path / "run"), str(tmp_path / "log")
    process = start_train(digits, run_dir, *ACCUM, log_path=log)
    # Killed as soon as a mid-epoch checkpoint exists, while the next window is computing.
    while not [s for s in checkpoint_steps(run_dir) if s >= 8]:
        assert process.poll() is None, open(log).read()[-3000:]
        time.sleep(0.05)
    process.kill()
    process.wait()
    # The newest checkpoint the state file lists: a kill between a checkpoint's files and
    # the state file's update leaves that checkpoint unlisted, and it is not resumed from.
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    killed_at = int(latest.rsplit("-", 1)[1])
    result = run_train(digits, run_dir, *ACCUM)
    assert result.returncode == 0, result.stdout[-3000:]
    resumed = re.search(r"resuming at step (\d+)", result.stdout)
    assert resumed and int(resumed.group(1)) == killed_at, result.stdout[-3000:]
    assert 0 < killed_at < 46
    got = model_weights(os.path.join(run_dir, "checkpoints", "ckpt-46"))
    want = model_weights(final)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert results["step"] == 46
