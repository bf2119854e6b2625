"""The per-example training losses: softmax cross-entropy or per-class sigmoid BCE.

Both take the targets the train step builds (one-hot, MixUp/CutMix-mixed, or
multi-hot) and return one loss per example, so label smoothing, mixed targets and
class weights compose the same way for every loss and for single- and multi-label
data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf


def smoothed_cross_entropy(
    labels: tf.Tensor, logits: tf.Tensor, label_smoothing: float
) -> tf.Tensor:
    """Per-example cross-entropy of soft or one-hot `labels` against float32 logits.

    Smoothing is applied to whatever target arrives (MixUp/CutMix targets too), so the
    two compose the way timm's SoftTargetCrossEntropy + smoothing does.
    """
    num_classes = tf.cast(tf.shape(logits)[-1], tf.float32)
    targets = labels * (1.0 - label_smoothing) + label_smoothing / num_classes
    return tf.nn.softmax_cross_entropy_with_logits(targets, tf.cast(logits, tf.float32))


def smoothed_binary_cross_entropy(
    labels: tf.Tensor, logits: tf.Tensor, label_smoothing: float
) -> tf.Tensor:
    """Per-example sigmoid BCE of soft, one-hot or multi-hot `labels`, summed over classes.

    Smoothing moves each target towards smoothing / num_classes, as timm's
    BinaryCrossEntropy does ("ResNet strikes back"). Summed, not averaged, over the
    classes: each logit's gradient, sigmoid(z) - y, then has the scale of the softmax
    loss's softmax(z) - y, so a learning rate tuned for one suits the other.
    """
    num_classes = tf.cast(tf.shape(logits)[-1], tf.float32)
    targets = labels * (1.0 - label_smoothing) + label_smoothing / num_classes
    per_class = tf.nn.sigmoid_cross_entropy_with_logits(targets, tf.cast(logits, tf.float32))
    return tf.reduce_sum(per_class, axis=-1)


_LOSS_FNS = {"softmax": smoothed_cross_entropy, "bce": smoothed_binary_cross_entropy}


def resolve(kind: str, multi_label: bool) -> str:
    """The loss a run trains with: `kind`, or for "auto" the data's task's.

    Raises:
      ValueError: softmax on multi-label data (one class per image is not the task).
    """
    if kind == "auto":
        return "bce" if multi_label else "softmax"
    if kind == "softmax" and multi_label:
        raise ValueError("--loss=softmax on multi-label data: softmax picks one class per "
                         "image; use --loss=bce (or auto, which picks it for this data).")
    return kind


def example_weights(targets: tf.Tensor, class_weights: tf.Tensor) -> tf.Tensor:
    """Each example's weight: the mean class weight of its target, weighted by the target.

    A one-hot target gets its class's weight; a MixUp pair lam * w_a + (1 - lam) * w_b;
    a multi-hot target the mean weight of its labels. Taken from the targets before
    smoothing, so smoothing does not give every example a share of every class's weight.
    """
    mass = tf.reduce_sum(targets, axis=-1)
    weighted = tf.reduce_sum(targets * class_weights, axis=-1)
    return tf.math.divide_no_nan(weighted, mass)


def make_loss(
    kind: str, label_smoothing: float, class_weights: Sequence[float] | None = None
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Returns loss(targets [B, C], logits [B, C]) -> per-example loss [B], float32.

    Args:
      kind: "softmax" or "bce" (see `resolve` for "auto").
      label_smoothing: see `smoothed_cross_entropy`.
      class_weights: one weight per class, applied per example (see `example_weights`);
        None for none.

    Raises:
      ValueError: an unknown `kind`, naming the known ones.
    """
    if kind not in _LOSS_FNS:
        raise ValueError(f"Unknown --loss={kind!r}; known: {', '.join(_LOSS_FNS)}.")
    loss_fn = _LOSS_FNS[kind]
    weights = None if class_weights is None else tf.constant(class_weights, tf.float32)

    def loss(targets: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        per_example = loss_fn(targets, logits, label_smoothing)
        if weights is None:
            return per_example
        return per_example * example_weights(targets, weights)

    return loss
