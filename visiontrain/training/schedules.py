"""Learning-rate schedules: linear warmup then cosine, step or constant, and the two-phase
schedule of transfer learning (head-only phase, then fine-tuning with its own warmup)."""

from __future__ import annotations

import dataclasses
import math

import keras
import tensorflow as tf

from visiontrain.config import SCHEDULES, TrainConfig


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


def warmup_schedule(
    config: TrainConfig, steps_per_epoch: int, global_batch_size: int
) -> WarmupSchedule:
    """One warmup-then-decay schedule over `config.epochs`; epochs become steps here."""
    return WarmupSchedule(
        peak=peak_learning_rate(config, global_batch_size),
        total_steps=config.epochs * steps_per_epoch,
        warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
        kind=config.schedule,
        boundaries=tuple(e * steps_per_epoch for e in config.step_decay_epochs),
        decay_rate=config.step_decay_rate,
    )


@keras.saving.register_keras_serializable(package="visiontrain")
class PhasedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`head(step)` before `boundary`, then `fine_tune(step - boundary)`."""

    def __init__(self, head, fine_tune, boundary: int):
        self.head = head
        self.fine_tune = fine_tune
        self.boundary = boundary

    def __call__(self, step):
        step = tf.cast(step, tf.int64)
        return tf.where(step < self.boundary, self.head(step),
                        self.fine_tune(tf.maximum(step - self.boundary, 0)))

    def get_config(self):
        return {
            "head": keras.saving.serialize_keras_object(self.head),
            "fine_tune": keras.saving.serialize_keras_object(self.fine_tune),
            "boundary": self.boundary,
        }

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["head"]),
                   keras.saving.deserialize_keras_object(config["fine_tune"]),
                   config["boundary"])


def make_schedule(config: TrainConfig, steps_per_epoch: int, global_batch_size: int):
    """The run's LR schedule: `warmup_schedule`, split in two with --freeze_epochs.

    Phase 1 (head only) is the ordinary schedule over `freeze_epochs` with --base_lr and
    --warmup_epochs. Phase 2 restarts from 0 with its own warmup
    (--fine_tune_warmup_epochs) to a peak of --fine_tune_lr (per 256 images, like
    --base_lr; 0 means a tenth of --base_lr) and decays over the remaining epochs.
    """
    if not config.freeze_epochs or config.freeze_epochs >= config.epochs:
        return warmup_schedule(
            dataclasses.replace(config, epochs=max(config.freeze_epochs, config.epochs)),
            steps_per_epoch, global_batch_size)
    head = warmup_schedule(
        dataclasses.replace(config, epochs=config.freeze_epochs, step_decay_epochs=()),
        steps_per_epoch, global_batch_size)
    fine_tune = warmup_schedule(
        dataclasses.replace(
            config,
            epochs=config.epochs - config.freeze_epochs,
            base_lr=config.fine_tune_lr or config.base_lr / 10,
            warmup_epochs=config.fine_tune_warmup_epochs,
            step_decay_epochs=tuple(
                e - config.freeze_epochs for e in config.step_decay_epochs
                if e > config.freeze_epochs),
        ),
        steps_per_epoch, global_batch_size)
    return PhasedSchedule(head, fine_tune, config.freeze_epochs * steps_per_epoch)
