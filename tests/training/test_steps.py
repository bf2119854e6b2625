"""The compiled steps on their edge cases (the loop tests cover them end to end)."""

from __future__ import annotations

import tensorflow as tf

from visiontrain.config import ModelConfig
from visiontrain.models.registry import build_model
from visiontrain.training import steps


def test_an_empty_replica_batch_evaluates_to_nothing():
    """A replica's last evaluation batch can be empty; TF 2.21's oneDNN convolution
    returns an empty input unchanged, which the next layer then refuses."""
    model = build_model(ModelConfig(name="small_cnn", num_classes=10), 8)
    step = tf.function(steps.make_eval_step(model, 10))
    sums, tally = step(tf.zeros([0, 8, 8, 3], tf.uint8), tf.zeros([0], tf.int32))
    assert sums.numpy().tolist() == [0, 0, 0, 0] and tally.numpy().sum() == 0
    sums, _ = step(tf.zeros([2, 8, 8, 3], tf.uint8), tf.zeros([2], tf.int32))
    assert steps.EvalSums(*sums.numpy().tolist()).count == 2
