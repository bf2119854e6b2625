"""Resolving `ModelConfig.pretrained` into what to load, and loading whole-model weights.

`pretrained` is "" (random init), "imagenet" (keras.applications download), "hub:PRESET"
(a keras-hub preset name, or a local keras-hub preset or timm checkpoint directory; see
`hub.py`) or a path to:
  * a backbone-only weights file: the keras.applications no-top layout, legacy `.h5`
    (what keras downloads) or `.weights.h5` (`backbone.save_weights`);
  * a whole visiontrain model's `.weights.h5` (`model.save_weights`), possibly with a
    different class count, in which case the head is re-initialised (and logged); or
  * a visiontrain run directory: its RUN_DIR/best.weights.h5, the weights of its best
    evaluation (which one is logged).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import h5py
import keras
from absl import logging

from visiontrain.config import HUB_PREFIX, is_local_preset
from visiontrain.models.head import BACKBONE_NAME

# Keras 3 names the entries of a `.weights.h5` after the snake-cased layer class: our
# nested backbone is a Functional and the head's only top-level Dense is the classifier.
_NESTED_MODEL_KEY = "layers/functional"
_HEAD_KERNEL_KEY = "layers/dense/vars/0"
# What a training run publishes at each new best evaluation (training/checkpoints.py
# writes it under this name, so a run directory can be passed as --pretrained).
RUN_BEST_WEIGHTS = "best.weights.h5"


@dataclasses.dataclass(frozen=True)
class PretrainedSource:
    """What `ModelConfig.pretrained` asks for.

    Attributes:
      kind: "none", "imagenet", "hub", "backbone_file" or "model_file".
      path: The weights file, for the two file kinds; the preset, for "hub".
      num_classes: The class count stored in a "model_file".
    """

    kind: str
    path: str = ""
    num_classes: int = 0

    @property
    def backbone_weights(self) -> str | None:
        """The `weights=` argument for the backbone builder."""
        return {"imagenet": "imagenet", "backbone_file": self.path}.get(self.kind)

    @property
    def preset(self) -> str | None:
        """The keras-hub preset to build the backbone from."""
        return self.path if self.kind == "hub" else None


def resolve_pretrained(pretrained: str) -> PretrainedSource:
    """Classifies `ModelConfig.pretrained`, checking that a file exists and is readable.

    Args:
      pretrained: "", "imagenet", a path to an `.h5` / `.weights.h5` file or a run
        directory (its best weights).

    Returns:
      The `PretrainedSource`.

    Raises:
      ValueError: If the path does not exist or is not a Keras HDF5 weights file.
    """
    if not pretrained:
        return PretrainedSource("none")
    if pretrained == "imagenet":
        return PretrainedSource("imagenet")
    if pretrained.startswith(HUB_PREFIX):
        preset = pretrained[len(HUB_PREFIX):]
        if is_local_preset(preset) and not os.path.isdir(preset):
            raise ValueError(
                f"--pretrained={pretrained!r}: no such directory. Pass hub:DIR of a keras-hub "
                "preset (save_to_preset) or a timm checkpoint (config.json + "
                "model.safetensors), or hub:NAME of a keras-hub preset when online.")
        return PretrainedSource("hub", preset)
    if os.path.isdir(pretrained):
        best = os.path.join(pretrained, RUN_BEST_WEIGHTS)
        if not os.path.isfile(best):
            raise ValueError(
                f"--pretrained={pretrained!r} is a directory without {RUN_BEST_WEIGHTS}; pass "
                "a visiontrain run directory that has evaluated at least once, or a weights "
                "file (.h5 / .weights.h5)."
            )
        logging.info("--pretrained=%s is a run directory: loading its best weights, %s.",
                     pretrained, best)
        pretrained = best
    if not os.path.isfile(pretrained):
        raise ValueError(
            f"--pretrained={pretrained!r}: no such file. Pass '' (random init), 'imagenet', "
            "the path of an existing .h5 / .weights.h5 weights file, or a run directory."
        )
    if not pretrained.endswith(".h5"):
        raise ValueError(
            f"--pretrained={pretrained!r} is not an .h5 / .weights.h5 weights file. For a "
            ".keras model, save its weights first: model.save_weights('x.weights.h5')."
        )
    try:
        with h5py.File(pretrained, "r") as f:
            if _NESTED_MODEL_KEY in f and _HEAD_KERNEL_KEY in f:
                num_classes = int(f[_HEAD_KERNEL_KEY].shape[-1])
                return PretrainedSource("model_file", pretrained, num_classes)
    except OSError as e:
        raise ValueError(f"--pretrained={pretrained!r} is not a readable HDF5 file: {e}") from e
    return PretrainedSource("backbone_file", pretrained)


def load_model_file(
    model: keras.Model,
    source: PretrainedSource,
    num_classes: int,
    build_like: Callable[[int], keras.Model],
) -> None:
    """Loads a whole visiontrain model's weights, re-initialising a head of another size.

    A different class count is loaded strictly into a donor model of the file's class
    count and only the backbone is copied, so an architecture mismatch is an error rather
    than a silently skipped layer.

    Args:
      model: The freshly built model to fill.
      source: A "model_file" `PretrainedSource`.
      num_classes: The class count of `model`.
      build_like: Builds a random-init model like `model` with a given class count.

    Raises:
      ValueError: If the file does not fit the architecture.
    """
    same_head = source.num_classes == num_classes
    target = model if same_head else build_like(source.num_classes)
    try:
        target.load_weights(source.path)
    except Exception as e:  # Keras reports a mismatch as ValueError or KeyError.
        raise ValueError(
            f"Could not load {source.path!r} into {model.name!r}: {e}. It must be "
            f"model.save_weights() output of a {model.name!r} model."
        ) from e
    if same_head:
        logging.info("Loaded all weights of %s from %s.", model.name, source.path)
        return
    model.get_layer(BACKBONE_NAME).set_weights(target.get_layer(BACKBONE_NAME).get_weights())
    logging.warning(
        "Loaded the backbone of %s from %s; the head was replaced and re-initialised "
        "because the file has %d classes and the model %d.",
        model.name, source.path, source.num_classes, num_classes)


def load_backbone_file(backbone: keras.Model, source: PretrainedSource,
                       name: str) -> keras.Model:
    """Loads a "backbone_file" source into a backbone built without weights; returns it.

    For the families that build their own layers (our ResNets, keras-hub backbones):
    keras.applications takes its weights file at construction instead. Other sources load
    nothing here; `build_model` refuses "imagenet" for these families first.

    Raises:
      ValueError: If the file does not fit the backbone.
    """
    if source.kind != "backbone_file":
        return backbone
    try:
        backbone.load_weights(source.path)
    except Exception as e:  # Keras reports a mismatch as ValueError or KeyError.
        raise ValueError(
            f"Could not load backbone weights {source.path!r} into {name!r}: {e}. "
            f"Pass backbone.save_weights() output of a {name!r} backbone."
        ) from e
    return backbone
