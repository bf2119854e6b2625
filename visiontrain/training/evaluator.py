"""In-training validation: the replicated eval step over the validation split, per weight set.

The loop evaluates the raw weights and, when an EMA is kept, the EMA weights swapped in;
`better_weights` picks the set the run reports and keeps as its best. `metrics_of` turns
the eval step's summed counts into metrics and `write_summaries` logs them, for single-
and multi-label runs.
"""

from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from visiontrain.evaluation import multilabel
from visiontrain.pipelines import datasets
from visiontrain.training import steps, summaries
from visiontrain.training.ema import WeightAverage


def better_weights(evals: dict[str, dict[str, float]]) -> str:
    """"ema" when the EMA weights beat the raw ones on validation accuracy, else "raw"."""
    if "ema" in evals and evals["ema"]["accuracy"] > evals["raw"]["accuracy"]:
        return "ema"
    return "raw"


def metrics_of(sums: steps.EvalSums, tally: np.ndarray, multi_label: bool) -> dict[str, Any]:
    """Validation metrics of `steps.make_eval_step`'s sums and tally, over a whole split.

    Single-label: loss, accuracy, top5. Multi-label: loss, accuracy (the exact label-set
    match ratio at 0.5) and micro/macro F1 at 0.5; mAP and tuned thresholds need every
    score and are `visiontrain-evaluate`'s.
    """
    metrics = {"loss": sums.loss / sums.count, "accuracy": sums.top1 / sums.count}
    if multi_label:
        table = multilabel.f1_from_counts(tally)
        metrics.update(micro_f1=table["micro_f1"], macro_f1=table["macro_f1"])
    else:
        metrics["top5"] = sums.top5 / sums.count
    return {**metrics, "examples": int(sums.count)}


def write_summaries(
    writer, logdir: str, kind: str, metrics: dict[str, Any], tally: np.ndarray,
    labels: list[str], step: int, chief: bool,
) -> None:
    """Every metric as a scalar (EMA weights' with an _ema suffix), and for single-label
    runs the confusion matrix image (chief only)."""
    suffix = "" if kind == "raw" else "_ema"
    with writer.as_default(step=step):
        for name, value in metrics.items():
            if name != "examples":
                tf.summary.scalar(name + suffix, value)
    if chief and tally.shape[1] == len(labels) and "top5" in metrics:
        summaries.write_confusion_matrix(logdir, "confusion_matrix" + suffix,
                                         tally.astype(np.int64), step, labels=labels)


class Evaluator:
    """Validation metrics of the model under `strategy`; the eval step's tallies (confusion
    matrices, or multi-label per-label counts) by weight set."""

    def __init__(self, strategy: tf.distribute.Strategy, source: datasets.Reader,
                 model: keras.Model, num_classes: int, global_batch_size: int,
                 ema: WeightAverage | None, sync_replicas: Callable[[], None],
                 loss: str = "softmax"):
        self.strategy, self.source, self.batch = strategy, source, global_batch_size
        self.num_classes, self.ema, self.sync_replicas = num_classes, ema, sync_replicas
        self.tallies: dict[str, np.ndarray] = {}
        eval_fn = steps.make_eval_step(model, num_classes, loss, source.multi_label)

        @tf.function
        def eval_batch(images, labels):
            sums, tally = strategy.run(eval_fn, args=(images, labels))
            return (strategy.reduce("SUM", sums, axis=None),
                    strategy.reduce("SUM", tally, axis=None))

        self._eval_batch = eval_batch

    def evaluate_weights(self, kind: str = "raw") -> dict[str, float]:
        """Metrics of the weights the model holds now, recorded under `kind`."""
        eval_ds = self.strategy.distribute_datasets_from_function(
            lambda ctx: self.source.eval_dataset(
                batch_size=ctx.get_per_replica_batch_size(self.batch),
                num_pipelines=ctx.num_input_pipelines, pipeline_id=ctx.input_pipeline_id,
            )
        )
        sums = tf.zeros([len(steps.EvalSums._fields)])
        tally = tf.zeros(steps.tally_shape(self.num_classes, self.source.multi_label))
        for images, labels in eval_ds:
            batch_sums, batch_tally = self._eval_batch(images, labels)
            sums += batch_sums
            tally += batch_tally
        self.tallies[kind] = tally.numpy()
        return metrics_of(steps.EvalSums(*sums.numpy().tolist()), self.tallies[kind],
                          self.source.multi_label)

    def __call__(self) -> dict[str, dict[str, float]]:
        """Metrics of the raw weights, and of the EMA weights swapped in when kept."""
        self.sync_replicas()  # Evaluate the statistics the next checkpoint saves.
        by_weights = {"raw": self.evaluate_weights()}
        if self.ema is not None:
            self.ema.swap()
            try:
                by_weights["ema"] = self.evaluate_weights("ema")
            finally:
                self.ema.swap()
        return by_weights
