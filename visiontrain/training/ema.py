"""Exponential moving average of a model's weights (Polyak averaging).

The averages are ordinary variables created in the strategy scope, so they are
mirrored like the weights and saved in the run's checkpoints (under the name `ema`,
see `training.checkpoints`). They are updated inside the replicated train step,
after the optimizer: weights are identical on every replica at that point, so the
averages use ONLY_FIRST_REPLICA aggregation and no communication is needed.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class WeightAverage(tf.Module):
    """EMA of every model weight, BatchNorm moving statistics included (as timm does).

    The decay ramps up as min(decay, (1 + step) / (10 + step)) (Model Garden's
    dynamic decay), so early averages are not dominated by the random init.
    """

    def __init__(self, model: keras.Model, decay: float):
        super().__init__(name="ema")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema_decay={decay} must be in (0, 1), e.g. 0.9999; 0 disables.")
        self.decay = decay
        self._weights = list(model.weights)
        self.averages = [
            tf.Variable(
                w.value if hasattr(w, "value") else w,
                trainable=False,
                name=w.path.replace("/", "_").replace(":", "_") if hasattr(w, "path") else None,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            for w in self._weights
        ]

    def update(self, step: tf.Tensor) -> None:
        """Folds the current weights into the averages; `step` is the finished step."""
        step = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + step) / (10.0 + step))
        for average, weight in zip(self.averages, self._weights):
            value = tf.convert_to_tensor(weight)
            average.assign(decay * average + (1.0 - decay) * tf.cast(value, average.dtype))

    def swap(self) -> None:
        """Exchanges model weights and averages (call twice to undo); cross-replica, eager."""
        for average, weight in zip(self.averages, self._weights):
            current = tf.identity(tf.convert_to_tensor(weight))
            weight.assign(tf.convert_to_tensor(average))
            average.assign(current)

    def copy_to_model(self) -> None:
        """Overwrites the model weights with the averages (what an exporter wants)."""
        for average, weight in zip(self.averages, self._weights):
            weight.assign(tf.convert_to_tensor(average))
