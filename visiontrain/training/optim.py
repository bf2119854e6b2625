"""Optimiser and learning-rate schedule, built from the training config."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from visiontrain.config import TrainConfig
from visiontrain.training import transfer_optim

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")


def peak_learning_rate(config: TrainConfig, global_batch_size: int) -> float:
    """base_lr, scaled linearly with the global batch (Goyal et al.) unless disabled."""
    if config.scale_lr:
        return config.base_lr * global_batch_size / 256
    return config.base_lr


@keras.saving.register_keras_serializable(package="visiontrain")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak`, then cosine to 0, step decay, or constant."""

    def __init__(
        self,
        peak: float,
        total_steps: int,
        warmup_steps: int = 0,
        kind: str = "cosine",
        boundaries: tuple[int, ...] = (),
        decay_rate: float = 0.1,
    ):
        if kind not in SCHEDULES:
            raise ValueError(f"Unknown schedule {kind!r}; use one of {SCHEDULES}.")
        self.peak = peak
        self.total_steps = max(1, total_steps)
        self.warmup_steps = warmup_steps
        self.kind = kind
        self.boundaries = tuple(boundaries)
        self.decay_rate = decay_rate

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = tf.constant(self.peak, tf.float32)
        warm = tf.cast(self.warmup_steps, tf.float32)
        if self.kind == "cosine":
            progress = (step - warm) / tf.maximum(1.0, self.total_steps - warm)
            decayed = 0.5 * peak * (1.0 + tf.cos(math.pi * tf.clip_by_value(progress, 0.0, 1.0)))
        elif self.kind == "step":
            passed = tf.add_n(
                [tf.cast(step >= b, tf.float32) for b in self.boundaries] + [tf.constant(0.0)]
            )
            decayed = peak * tf.pow(self.decay_rate, passed)
        else:
            decayed = peak
        warmup = peak * (step + 1.0) / tf.maximum(1.0, warm)
        return tf.where(step < warm, warmup, decayed)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "kind": self.kind,
            "boundaries": list(self.boundaries),
            "decay_rate": self.decay_rate,
        }


def make_schedule(
    config: TrainConfig, steps_per_epoch: int, global_batch_size: int
) -> WarmupSchedule:
    """The run's LR schedule; epochs in the config become steps here."""
    return WarmupSchedule(
        peak=peak_learning_rate(config, global_batch_size),
        total_steps=config.epochs * steps_per_epoch,
        warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
        kind=config.schedule,
        boundaries=tuple(e * steps_per_epoch for e in config.step_decay_epochs),
        decay_rate=config.step_decay_rate,
    )


def make_optimizer(
    config: TrainConfig, schedule, model: keras.Model
) -> keras.optimizers.Optimizer:
    """SGD or AdamW with decoupled weight decay that skips biases and BatchNorm.

    Decay is applied by the optimizer (decoupled), never as an L2 term in the loss,
    and only to kernels: decaying BN scales and biases hurts accuracy (Goyal et al.).
    """
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown --optimizer={config.optimizer!r}; use one of {OPTIMIZERS}.")
    common = dict(
        learning_rate=schedule,
        weight_decay=config.weight_decay or None,
        global_clipnorm=config.clip_norm or None,
    )
    if config.optimizer == "sgd":
        optimizer = transfer_optim.optimizer_class(keras.optimizers.SGD, config)(
            momentum=config.momentum, nesterov=config.nesterov, **common
        )
    else:
        optimizer = transfer_optim.optimizer_class(keras.optimizers.AdamW, config)(**common)
    if config.weight_decay:
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if len(v.shape) <= 1]
        )
    if config.dtype == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
