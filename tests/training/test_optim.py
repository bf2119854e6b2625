"""Schedule values, decoupled weight decay scope, and the weight EMA."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from visiontrain.config import TrainConfig
from visiontrain.training import optim, schedules
from visiontrain.training.ema import WeightAverage


def schedule_values(schedule, steps):
    return np.array([float(schedule(s)) for s in steps])


def test_warmup_then_cosine_values():
    schedule = schedules.WarmupSchedule(peak=1.0, total_steps=110, warmup_steps=10)
    np.testing.assert_allclose(schedule_values(schedule, [0, 4, 9]), [0.1, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(schedule_values(schedule, [10, 60, 110]), [1.0, 0.5, 0.0],
                               atol=1e-6)


def test_step_schedule_values():
    schedule = schedules.WarmupSchedule(peak=0.4, total_steps=100, kind="step",
                                    boundaries=(30, 60), decay_rate=0.1)
    np.testing.assert_allclose(schedule_values(schedule, [0, 29, 30, 59, 60, 99]),
                               [0.4, 0.4, 0.04, 0.04, 0.004, 0.004], rtol=1e-5)


def test_lr_scales_with_global_batch_unless_disabled():
    config = TrainConfig(run_dir="x", base_lr=0.1)
    assert schedules.peak_learning_rate(config, 1024) == pytest.approx(0.4)
    assert schedules.peak_learning_rate(dataclasses.replace(config, scale_lr=False), 1024) == 0.1


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_weight_decay_skips_bias_and_batchnorm(name):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2),
                              keras.layers.BatchNormalization()])
    config = TrainConfig(run_dir="x", optimizer=name, weight_decay=0.5, momentum=0.0,
                         base_lr=1.0, scale_lr=False)
    optimizer = optim.make_optimizer(config, 0.1, model)
    before = [v.numpy().copy() for v in model.trainable_variables]
    optimizer.apply_gradients(
        [(tf.zeros_like(v), v) for v in model.trainable_variables])
    for variable, old in zip(model.trainable_variables, before):
        changed = not np.allclose(variable.numpy(), old)
        # Zero gradients: only decay can move a weight, and only kernels decay.
        assert changed == (len(variable.shape) > 1), variable.path


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_decay_in_the_update_follows_keras_and_reads_the_schedule_once(name):
    """Same weights as the stock Keras optimizer over a warmup schedule, with the schedule
    evaluated once per step, where Keras evaluates it again for every decayed variable."""
    config = TrainConfig(run_dir="x", optimizer=name, weight_decay=0.05, momentum=0.9,
                         base_lr=0.4, warmup_epochs=1, epochs=3, scale_lr=False)
    calls = []

    class Counted(schedules.WarmupSchedule):
        def __call__(self, step):
            calls.append(step)
            return super().__call__(step)

    def trajectory(make):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                                  keras.layers.Dense(2)])
        schedule = Counted(peak=0.4, warmup_steps=2, total_steps=6, kind="cosine")
        optimizer = make(schedule, model)
        optimizer.build(model.trainable_variables)
        x = tf.reshape(tf.range(8, dtype=tf.float32), [2, 4]) / 8

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(model(x) - 1.0))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                          model.trainable_variables))
        del calls[:]
        for _ in range(4):
            step()
        return [v.numpy() for v in model.trainable_variables], len(calls)

    def stock(schedule, model):
        ours, arguments = optim._optimizers(config)[name]
        stock_class = getattr(keras.optimizers, ours.__name__)  # the Keras class ours extends
        assert issubclass(ours, stock_class)
        optimizer = stock_class(**arguments, learning_rate=schedule, weight_decay=0.05)
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables
                                                      if len(v.shape) <= 1])
        return optimizer

    ours, ours_calls = trajectory(lambda schedule, model: optim.make_optimizer(
        config, schedule, model))
    keras_weights, keras_calls = trajectory(stock)
    for a, b in zip(ours, keras_weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert ours_calls == 1  # one trace of the step
    assert keras_calls == 1 + 2  # and once more per decayed kernel


def test_ema_ramps_decay_and_swaps_back():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    kernel = model.trainable_variables[0]
    kernel.assign(np.zeros((2, 1), np.float32))
    ema = WeightAverage(model, decay=0.9)
    kernel.assign(np.ones((2, 1), np.float32))
    ema.update(tf.constant(1))  # ramp: min(0.9, 2/11)
    np.testing.assert_allclose(ema.averages[0].numpy(), 9 / 11, rtol=1e-6)
    ema.update(tf.constant(1000))  # full decay
    np.testing.assert_allclose(ema.averages[0].numpy(), 0.9 * 9 / 11 + 0.1, rtol=1e-6)
    ema.swap()
    np.testing.assert_allclose(kernel.numpy(), 0.9 * 9 / 11 + 0.1, rtol=1e-6)
    ema.swap()
    np.testing.assert_allclose(kernel.numpy(), 1.0)


def test_ema_rejects_a_decay_outside_0_1():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="ema_decay=1.5"):
        WeightAverage(model, 1.5)
