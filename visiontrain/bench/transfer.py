"""Transfer benchmark on real photos: pretrain on 5 CIFAR-10 classes, transfer to the other 5.

    visiontrain-bench transfer --images=PHOTOS [--model=resnet20 --shots=20]

The source tree is `SOURCE/{train,test}/<class>/*.jpg`. The first five classes (sorted)
pretrain a network on all their training photos; the last five get `shots` photos per
class. Three networks then train for the same number of steps on the few-shot set and are
scored on the last five classes' test photos: the pretrained backbone fine-tuned
(head-only epochs, then everything), a linear head on the frozen pretrained features, and
the same architecture from random initialisation.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from visiontrain.config import ConvertConfig, DataConfig, ModelConfig, TrainConfig
from visiontrain.models.registry import build_model
from visiontrain.pipelines import make_tfrecords
from visiontrain.training import loop


def _link_tree(source: str, out: str, classes: list[str], shots: int, seed: int) -> None:
    """Symlinks train (the first `shots` of each class, 0: all) and test photos as train/val."""
    rng = np.random.default_rng(seed)
    for split, target in (("train", "train"), ("test", "val")):
        for name in classes:
            files = sorted(os.listdir(os.path.join(source, split, name)))
            if split == "train" and shots:
                files = [files[i] for i in rng.permutation(len(files))[:shots]]
            os.makedirs(os.path.join(out, target, name))
            for f in files:
                os.symlink(os.path.join(source, split, name, f), os.path.join(out, target, name, f))


def _shards(source: str, work: str, name: str, classes: list[str], shots: int) -> str:
    tree, output = os.path.join(work, name + "_tree"), os.path.join(work, name)
    _link_tree(source, tree, classes, shots, seed=0)
    make_tfrecords.build(ConvertConfig(source=tree, output=output))
    return output


def _train(data: DataConfig, model: ModelConfig, config: TrainConfig) -> dict[str, Any]:
    keras.utils.set_random_seed(config.seed)
    start = time.perf_counter()
    result = loop.train(data, model, config, tf.distribute.OneDeviceStrategy("/cpu:0"))
    return {"accuracy": result["validation"]["accuracy"], "steps": result["step"],
            "seconds": round(time.perf_counter() - start, 1), "checkpoint": result["checkpoint"]}


def bench_transfer(
    source: str,
    model: str = "resnet20",
    shots: int = 20,
    pretrain_epochs: int = 10,
    epochs: int = 12,
    freeze_epochs: int = 4,
    freeze_bn: bool = True,
    image_size: int = 32,
    pretrain_batch: int = 64,
    few_shot_batch: int = 25,
    work_dir: str = "",
) -> dict[str, Any]:
    """Runs the benchmark; returns validation accuracies, steps and seconds per network.

    Args:
      source: A `{train,test}/<class>/` photo tree with 10 classes.
      model: Registry name of the network (small inputs: resnet20, small_cnn).
      shots: Training photos per class of the transfer task.
      pretrain_epochs: Epochs on the first five classes.
      epochs: Epochs on the few-shot task, the same for every network.
      freeze_epochs: Head-only epochs of the fine-tuned network.
      freeze_bn: Keep BatchNorm frozen while fine-tuning.
      image_size: Model input side.
      pretrain_batch: Global batch of the pretraining run.
      few_shot_batch: Global batch of the three few-shot runs.
      work_dir: Where shards and runs go (default: a new temporary directory).
    """
    classes = sorted(os.listdir(os.path.join(source, "train")))
    if len(classes) != 10:
        raise ValueError(f"{source}/train has {len(classes)} classes; the benchmark needs 10.")
    work = work_dir or tempfile.mkdtemp(prefix="visiontrain-transfer-bench-")
    common = dict(image_size=image_size, crop_area_min=0.5, eval_crop_fraction=1.0)
    first = DataConfig(_shards(source, work, "first5", classes[:5], 0),
                       global_batch_size=pretrain_batch, **common)
    last = DataConfig(_shards(source, work, "last5", classes[5:], shots),
                      global_batch_size=few_shot_batch, **common)
    net = ModelConfig(name=model)
    runs = {"pretrain": _train(first, net, TrainConfig(
        run_dir=os.path.join(work, "pretrain"), epochs=pretrain_epochs, base_lr=0.4,
        warmup_epochs=1, checkpoint_every_steps=0, eval_every=pretrain_epochs))}
    pretrained = build_model(dataclasses.replace(net, num_classes=5), image_size)
    tf.train.Checkpoint(model=pretrained).restore(runs["pretrain"]["checkpoint"]).expect_partial()
    weights = os.path.join(work, "pretrained.weights.h5")
    pretrained.save_weights(weights)
    few = TrainConfig(run_dir="", epochs=epochs, base_lr=2.0, freeze_epochs=freeze_epochs,
                      fine_tune_lr=0.2, fine_tune_warmup_epochs=1, freeze_bn=freeze_bn,
                      checkpoint_every_steps=0,
                      eval_every=epochs)
    with_weights = dataclasses.replace(net, pretrained=weights)
    runs["fine_tuned"] = _train(last, with_weights, dataclasses.replace(
        few, run_dir=os.path.join(work, "fine_tuned")))
    runs["linear_probe"] = _train(last, with_weights, dataclasses.replace(
        few, run_dir=os.path.join(work, "linear_probe"), freeze_epochs=epochs))
    runs["scratch"] = _train(last, net, dataclasses.replace(
        few, run_dir=os.path.join(work, "scratch"), freeze_epochs=0, base_lr=0.4))
    for run in runs.values():
        run.pop("checkpoint")
    return {"model": model, "shots": shots, "freeze_bn": freeze_bn, "first5": classes[:5],
            "last5": classes[5:], "work_dir": work, **runs}
