"""The eval step's sums travel stacked (one reduction) and are read back by name."""

import keras
import numpy as np
import tensorflow as tf

from visiontrain.training import evaluator, steps


def test_eval_sums_are_stacked_in_field_order_and_read_back_by_name():
    # Logits equal to the inputs: the predictions are known without training anything.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    logits = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 4.0], [0.0, 1.0, 2.0]],
                      np.float32)
    labels = np.array([0, 2, 2, 0], np.int32)
    stacked, tally = tf.function(steps.make_eval_step(model, num_classes=3))(logits, labels)
    sums = steps.EvalSums(*stacked.numpy().tolist())
    loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    assert stacked.shape == (len(steps.EvalSums._fields),)
    np.testing.assert_allclose(sums.loss, float(tf.reduce_sum(loss)), rtol=1e-5)
    assert (sums.top1, sums.top5, sums.count) == (2.0, 4.0, 4.0)
    metrics = evaluator.metrics_of(sums, tally.numpy(), multi_label=False)
    assert metrics["accuracy"] == 0.5 and metrics["top5"] == 1.0 and metrics["examples"] == 4
    np.testing.assert_allclose(metrics["loss"], sums.loss / 4)
