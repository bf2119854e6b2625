"""The replicated train and eval steps, compiled once per run.

Losses are summed per replica and divided by the GLOBAL batch size, so the
optimizer's cross-replica gradient sum equals the gradient of the global mean loss,
whatever the replica count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable, NamedTuple

import keras
import tensorflow as tf

from visiontrain.training import losses, replica_input


def targets_of(labels: tf.Tensor, num_classes: int, multi_label: bool) -> tf.Tensor:
    """float32 [B, C] targets of a batch's labels: one-hot class indices, or the multi-hot
    vectors a multi-label reader gives."""
    if multi_label:
        return tf.cast(labels, tf.float32)
    return tf.one_hot(labels, num_classes, dtype=tf.float32)


def exact_matches(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """Per example, 1.0 when the labels with sigmoid(logit) > 0.5 are exactly the target's
    (mixed targets count their labels of weight >= 0.5)."""
    return tf.cast(tf.reduce_all(tf.equal(logits > 0, targets >= 0.5), axis=-1), tf.float32)


def make_train_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    *,
    num_classes: int,
    global_batch_size: int,
    label_smoothing: float,
    loss: str = "softmax",
    class_weights: Sequence[float] | None = None,
    augmenter: Callable | None = None,
    ema=None,
    jit_compile: bool = False,
    multi_label: bool = False,
    accum_steps: int = 1,
) -> Callable:
    """Returns step_fn(images uint8, labels int32, step) -> [loss_sum, correct].

    `global_batch_size` counts the images of one optimizer step over all replicas. With
    `accum_steps` K, each replica's batch is cut into K micro-batches whose gradients are
    summed before the one update (`accumulate`); K micro-batches of B then equal one batch
    of K*B up to float rounding, except through BatchNorm batch statistics, which see B.

    `step` is the number of the step once finished; it drives the EMA decay ramp and,
    with the replica id the augmenter reads from the replica context, the stateless
    augmentation stream, so a resumed run augments exactly like an uninterrupted one.

    Runs inside `strategy.run`: the augmentation and the cast to float happen here,
    on each replica's device, not in the host input pipeline. `jit_compile` compiles
    augmentation, forward and backward pass with XLA. With `multi_label`, labels are
    [B, C] multi-hot and `correct` counts exact label-set matches.
    """
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    loss_fn = losses.make_loss(loss, label_smoothing, class_weights)
    sync_bn = any(getattr(layer, "synchronized", False) for layer in model._flatten_layers())

    # XLA compiles the per-replica computation only: the input iterator, the
    # cross-replica gradient sum and the optimizer's merge cannot be compiled. A nested
    # tf.function only then: it forbids merge_call, which synchronised BatchNorm needs.
    def gradients(images, labels, step):
        """Gradients of one (micro-)batch; `step` seeds its augmentation."""
        targets = targets_of(labels, num_classes, multi_label)
        if augmenter is not None:
            # The uint8 batch: a first op that casts (flip, jitter, erase) does it in its
            # own fused pass.
            images, targets = augmenter(images, targets, training=True, step=step)
        images = tf.cast(images, tf.float32)
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            per_example = loss_fn(targets, logits)
            loss = tf.reduce_sum(per_example) / global_batch_size
            if model.losses:
                loss += tf.add_n(model.losses) / (
                    tf.distribute.get_strategy().num_replicas_in_sync * accum_steps)
            scaled = optimizer.scale_loss(loss) if loss_scaled else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        if multi_label:
            correct = tf.reduce_sum(exact_matches(logits, targets))
        else:
            correct = tf.reduce_sum(
                tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(targets, -1)), tf.float32)
            )
        return grads, tf.reduce_sum(per_example), correct

    if jit_compile:
        gradients = tf.function(gradients, jit_compile=True)

    def step_fn(images, labels, step):
        if accum_steps == 1:
            grads, loss_sum, correct = gradients(images, labels, step)
        else:
            grads, loss_sum, correct = accumulate(gradients, model.trainable_variables,
                                                  images, labels, step, accum_steps,
                                                  unroll=sync_bn)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        if ema is not None:
            ema.update(step)
        # One tensor, so the multi-step function reduces across replicas once per step.
        return tf.stack([loss_sum, correct])

    return step_fn


def accumulate(gradients: Callable, variables, images, labels, step, accum_steps: int,
               unroll: bool = False):
    """Sums `gradients` over `accum_steps` equal slices of one replica's batch.

    The whole accumulation window lives inside one step: no partial sum is ever held in
    a variable, so a checkpoint is always at an optimizer-step boundary and a run killed
    inside a window resumes by redoing that window. Micro-batch i of step s augments
    with the stream of micro-step (s - 1) * K + i + 1, so the micro-batches differ.
    `unroll` writes the K micro-batches out in the graph instead of a tf.while_loop:
    synchronised BatchNorm all-reduces through merge_call, which a loop body cannot make.
    """
    def slices(tensor):
        return tf.reshape(tensor, tf.concat([[accum_steps, -1], tf.shape(tensor)[1:]], 0))

    images, labels = slices(images), slices(labels)
    sums = [tf.zeros(v.shape, v.dtype) for v in variables]
    loss_sum, correct = tf.constant(0.0), tf.constant(0.0)
    first = (tf.cast(step, tf.int64) - 1) * accum_steps + 1
    for i in range(accum_steps) if unroll else tf.range(accum_steps):
        grads, micro_loss, micro_correct = gradients(images[i], labels[i],
                                                     first + tf.cast(i, tf.int64))
        # A variable the loss does not reach (None) gets zeros, as apply_gradients expects.
        sums = [total if grad is None else total + tf.convert_to_tensor(grad)
                for total, grad in zip(sums, grads)]
        loss_sum += micro_loss
        correct += micro_correct
    return sums, loss_sum, correct


def make_multi_step(strategy: tf.distribute.Strategy, step_fn: Callable) -> Callable:
    """The loop's compiled function: `num_steps` replicated train steps per call.

    Returns train_steps(iterator, num_steps, first_step, phase) -> (loss_sum, correct),
    each summed over the steps and replicas of the call; `iterator` is a
    `replica_input.train_iterator`. `step_fn` is a
    `make_train_step` function; step `first_step + i + 1` is the number of step i once
    finished. `num_steps` and `first_step` are tensors (no retrace per call); `phase` is
    a Python trace key: a new transfer phase retraces with its trainable set. The
    training loop and `visiontrain-bench train` both call this, so the benchmark times
    the very function the loop runs.
    """

    @tf.function
    def train_steps(iterator, num_steps, first_step, phase):
        del phase  # Only a trace key.
        sums = tf.zeros([2])
        for i in tf.range(num_steps):
            batch = replica_input.next_batch(strategy, iterator)
            per_replica = strategy.run(step_fn, args=(*batch, first_step + i + 1))
            sums += strategy.reduce("SUM", per_replica, axis=None)
        return sums[0], sums[1]

    return train_steps


class EvalSums(NamedTuple):
    """What the eval step sums over a batch, by name.

    The step stacks them, in this order, into one float32 tensor, so one cross-replica
    reduction adds them all; `EvalSums(*stacked.numpy().tolist())` names them again.
    The fields are scalar tensors inside the step, floats once read back.

    Attributes:
      loss: The per-example loss, summed.
      top1: Correct top-1 predictions (multi-label: exact label-set matches at 0.5).
      top5: Labels within the top 5 logits (multi-label: 0).
      count: Examples.
    """

    loss: float
    top1: float
    top5: float
    count: float


def tally_shape(num_classes: int, multi_label: bool) -> list[int]:
    """Shape of the eval step's count matrix: [C, C] confusion, or multi-label [C, 3]."""
    return [num_classes, 3] if multi_label else [num_classes, num_classes]


def make_eval_step(
    model: keras.Model, num_classes: int, loss: str = "softmax", multi_label: bool = False
) -> Callable:
    """Returns step_fn(images, labels) -> (sums, tally), `sums` an `EvalSums` stacked.

    The loss is the training `loss`, unsmoothed and unweighted. Single-label: `tally` is
    the [C, C] count matrix of (true, predicted) pairs. Multi-label: top1 counts exact
    label-set matches at sigmoid 0.5, top5 is 0, and `tally` is [C, 3]: true positives,
    false positives and false negatives per label at 0.5. Like the sums, the tally adds
    up across batches and replicas.
    """
    k = min(5, num_classes)
    loss_fn = losses.make_loss(loss, label_smoothing=0.0)

    def multi_label_step(logits, labels):
        targets = targets_of(labels, num_classes, True)
        predicted = tf.cast(logits > 0, tf.float32)
        tally = tf.stack([tf.reduce_sum(predicted * targets, 0),
                          tf.reduce_sum(predicted * (1 - targets), 0),
                          tf.reduce_sum((1 - predicted) * targets, 0)], axis=1)
        return loss_fn(targets, logits), exact_matches(logits, targets), tf.zeros([0]), tally

    def single_label_step(logits, labels):
        predicted = tf.argmax(logits, -1, output_type=tf.int32)
        top1 = tf.cast(tf.equal(predicted, labels), tf.float32)
        top5 = tf.cast(tf.math.in_top_k(labels, logits, k), tf.float32)
        confusion = tf.math.confusion_matrix(labels, predicted, num_classes, dtype=tf.float32)
        return loss_fn(tf.one_hot(labels, num_classes), logits), top1, top5, confusion

    def logits_of(images):
        return tf.cast(model(tf.cast(images, tf.float32), training=False), tf.float32)

    def step_fn(images, labels):
        # The last step of a distributed evaluation gives a replica an empty batch when
        # the others still have records, and TF 2.21's oneDNN convolution returns an
        # empty input unchanged (channels and all), which then fails in the next layer.
        logits = tf.cond(tf.shape(images)[0] > 0, lambda: logits_of(images),
                         lambda: tf.zeros([0, num_classes]))
        per_example, top1, top5, tally = (multi_label_step if multi_label
                                          else single_label_step)(logits, labels)
        sums = EvalSums(loss=tf.reduce_sum(per_example), top1=tf.reduce_sum(top1),
                        top5=tf.reduce_sum(top5),
                        count=tf.cast(tf.shape(labels)[0], tf.float32))
        return tf.stack(list(sums)), tally

    return step_fn


def make_replica_sync(strategy: tf.distribute.Strategy, model: keras.Model) -> Callable:
    """Returns sync(): every replica's BatchNorm moving statistics set to their mean.

    Keras makes the moving statistics mirrored variables without aggregation, so each
    replica updates its own copy from its own part of the batch and the copies drift
    apart. In-training evaluation runs on every replica with that replica's copy,
    while a checkpoint keeps the first replica's: with 2 replicas the reported
    validation loss was not the checkpoint's. The loop syncs before every evaluation
    and every checkpoint, so what is evaluated, saved and restored (and so resumed
    from) is one set of statistics, the mean over replicas (timm's `distribute_bn`
    with reduce). Identical copies (a frozen layer) stay bit-identical with a power
    of 2 replicas. A no-op on one replica and, for now, under multi-worker.
    """
    statistics = [variable for layer in model._flatten_layers()
                  if isinstance(layer, keras.layers.BatchNormalization)
                  for variable in (layer.moving_mean, layer.moving_variance)]
    # Multi-worker is left as before: its replica-context all-reduce of these tensors
    # fails in TF 2.21 ("destinations can not be empty"); its workers hold one replica each.
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if strategy.num_replicas_in_sync == 1 or not statistics or multi_worker:
        return lambda: None

    def replica_fn():
        context = tf.distribute.get_replica_context()
        # One packed all-reduce (a collective: every worker of a job calls it).
        means = context.all_reduce("MEAN", [tf.convert_to_tensor(v) for v in statistics])
        for variable, mean in zip(statistics, means):
            # Without aggregation, a replica's assign writes its own copy only.
            variable.assign(mean)

    @tf.function
    def sync():
        strategy.run(replica_fn)

    return sync
