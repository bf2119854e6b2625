"""--loss=softmax|bce and --class_weights: the per-example losses of the train step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from visiontrain.training import class_weights, losses


def _sigmoid_bce(targets, logits):
    p = 1 / (1 + np.exp(-logits))
    return -(targets * np.log(p) + (1 - targets) * np.log(1 - p)).sum(-1)


def test_bce_is_per_class_sigmoid_summed_and_smoothing_moves_every_target():
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]], np.float32)
    one_hot = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
    loss = losses.make_loss("bce", 0.0)(tf.constant(one_hot), tf.constant(logits))
    np.testing.assert_allclose(loss.numpy(), _sigmoid_bce(one_hot, logits), rtol=1e-5)
    smoothed = losses.make_loss("bce", 0.3)(tf.constant(one_hot), tf.constant(logits))
    np.testing.assert_allclose(smoothed.numpy(), _sigmoid_bce(one_hot * 0.7 + 0.1, logits),
                               rtol=1e-5)


def test_bce_takes_multi_hot_and_mixed_targets():
    logits = tf.constant([[1.0, 1.0, -3.0]])
    multi_hot = tf.constant([[1.0, 1.0, 0.0]])
    mixed = tf.constant([[0.6, 0.4, 0.0]])
    bce = losses.make_loss("bce", 0.0)
    np.testing.assert_allclose(bce(multi_hot, logits).numpy(),
                               _sigmoid_bce(multi_hot.numpy(), logits.numpy()), rtol=1e-5)
    np.testing.assert_allclose(bce(mixed, logits).numpy(),
                               _sigmoid_bce(mixed.numpy(), logits.numpy()), rtol=1e-5)


def test_softmax_loss_is_the_smoothed_cross_entropy():
    logits = tf.constant([[2.0, -1.0, 0.5]])
    target = tf.constant([[0.0, 1.0, 0.0]])
    expected = losses.smoothed_cross_entropy(target, logits, 0.1)
    np.testing.assert_allclose(losses.make_loss("softmax", 0.1)(target, logits), expected)
    with pytest.raises(ValueError, match="Unknown --loss='focal'; known: softmax, bce"):
        losses.make_loss("focal", 0.0)


@pytest.mark.parametrize("kind", ["softmax", "bce"])
def test_class_weights_scale_each_example_by_its_target_before_smoothing(kind):
    logits = tf.constant([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0], [1.0, 1.0, 1.0]])
    targets = tf.constant([[1.0, 0, 0], [0, 0, 1.0], [0.25, 0.75, 0]])  # the last: MixUp
    weights = [1.0, 3.0, 0.5]
    plain = losses.make_loss(kind, 0.2)(targets, logits).numpy()
    weighted = losses.make_loss(kind, 0.2, weights)(targets, logits).numpy()
    np.testing.assert_allclose(weighted, plain * [1.0, 0.5, 0.25 + 0.75 * 3.0], rtol=1e-6)


def test_balanced_weights_are_inverse_frequency_with_mean_one_over_examples():
    counts = {"a": 100, "b": 10, "c": 10}
    weights = class_weights.resolve("balanced", ["a", "b", "c"], counts)
    np.testing.assert_allclose(weights, [120 / 300, 120 / 30, 120 / 30])
    assert sum(w * counts[k] for w, k in zip(weights, "abc")) == pytest.approx(120)
    assert class_weights.resolve("", ["a"], counts) is None
    with pytest.raises(ValueError, match=r"labels \['c'\] have no training example"):
        class_weights.resolve("balanced", ["a", "b", "c"], {"a": 3, "b": 1, "c": 0})
    with pytest.raises(ValueError, match="only visiontrain-data shards record"):
        class_weights.resolve("balanced", ["a", "b"], None)


def test_a_weights_file_is_used_as_given_and_checked(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"dog": 4, "cat": 1.5}))
    assert class_weights.resolve(str(path), ["cat", "dog"], None) == [1.5, 4.0]
    path.write_text(json.dumps({"cat": 1.0, "cow": 2.0}))
    with pytest.raises(ValueError, match=r"missing \['dog'\], unknown \['cow'\]"):
        class_weights.resolve(str(path), ["cat", "dog"], None)
    path.write_text(json.dumps({"cat": 1.0, "dog": -2}))
    with pytest.raises(ValueError, match=r"weights \{'dog': -2\} are not positive"):
        class_weights.resolve(str(path), ["cat", "dog"], None)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="holds a list; it must be a JSON object"):
        class_weights.resolve(str(path), ["cat", "dog"], None)
    with pytest.raises(ValueError, match="is unreadable"):
        class_weights.resolve(str(tmp_path / "none.json"), ["cat", "dog"], None)


def test_auto_picks_the_loss_of_the_task_and_softmax_refuses_multi_label():
    assert losses.resolve("auto", multi_label=False) == "softmax"
    assert losses.resolve("auto", multi_label=True) == "bce"
    assert losses.resolve("bce", multi_label=False) == "bce"
    with pytest.raises(ValueError, match="--loss=softmax on multi-label data"):
        losses.resolve("softmax", multi_label=True)
