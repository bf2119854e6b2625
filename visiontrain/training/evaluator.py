"""In-training validation: the replicated eval step over the validation split, per weight set.

The loop evaluates the raw weights and, when an EMA is kept, the EMA weights swapped in;
`better_weights` picks the set the run reports and keeps as its best.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from visiontrain.pipelines import datasets
from visiontrain.training import steps, validation
from visiontrain.training.ema import WeightAverage


def better_weights(evals: dict[str, dict[str, float]]) -> str:
    """"ema" when the EMA weights beat the raw ones on validation accuracy, else "raw"."""
    if "ema" in evals and evals["ema"]["accuracy"] > evals["raw"]["accuracy"]:
        return "ema"
    return "raw"


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
        sums = tf.zeros([4])
        tally = tf.zeros(steps.tally_shape(self.num_classes, self.source.multi_label))
        for images, labels in eval_ds:
            batch_sums, batch_tally = self._eval_batch(images, labels)
            sums += batch_sums
            tally += batch_tally
        self.tallies[kind] = tally.numpy()
        return validation.metrics_of(sums.numpy(), self.tallies[kind], self.source.multi_label)

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
