"""The transfer-learning LR schedule: head-only phase, then fine-tuning with its own warmup."""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from visiontrain.config import TrainConfig
from visiontrain.training import optim


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
    """The run's LR schedule: `optim.make_schedule`, split in two with --freeze_epochs.

    Phase 1 (head only) is the ordinary schedule over `freeze_epochs` with --base_lr and
    --warmup_epochs. Phase 2 restarts from 0 with its own warmup
    (--fine_tune_warmup_epochs) to a peak of --fine_tune_lr (per 256 images, like
    --base_lr; 0 means a tenth of --base_lr) and decays over the remaining epochs.
    """
    if not config.freeze_epochs or config.freeze_epochs >= config.epochs:
        return optim.make_schedule(
            dataclasses.replace(config, epochs=max(config.freeze_epochs, config.epochs)),
            steps_per_epoch, global_batch_size)
    head = optim.make_schedule(
        dataclasses.replace(config, epochs=config.freeze_epochs, step_decay_epochs=()),
        steps_per_epoch, global_batch_size)
    fine_tune = optim.make_schedule(
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
