"""keras.applications backbones (issue 6), without their tops, as "backbone" sub-models.

Each entry records the input convention its ImageNet weights expect; `scaling.py` turns
our [0, 255] RGB input into it. The pooling and classifier are ours (`head.py`), so every
backbone here is built with `include_top=False, pooling=None`. Registered here
(`register_model` at the foot), MobileNet v1 with a rule for any width.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

import keras
from absl import logging

from visiontrain.config import ModelConfig
from visiontrain.models.blocks import BlockNames
from visiontrain.models.pretrained import PretrainedSource
from visiontrain.models.registry import ModelSpec, register_model, register_model_rule

A = keras.applications


@dataclasses.dataclass(frozen=True)
class KerasBackbone:
    """One keras.applications constructor and the input it expects."""

    constructor: Callable[..., keras.Model]
    family: str
    input_scaling: str
    default_image_size: int

    @property
    def blocks(self) -> BlockNames:
        """How this family names its blocks (see `models/blocks.py`)."""
        return FAMILY_BLOCKS[self.family]


# How each keras.applications family names its blocks, by layer-name prefix.
FAMILY_BLOCKS = {
    "keras_resnet": BlockNames.of(r"(conv\d+_block\d+)_"),
    "efficientnetv2": BlockNames.of(r"(block\d+[a-z])_"),
    # A separable block is conv_dw_13 + conv_pw_13 (+ conv_pad_13): one block "conv_13".
    "mobilenet_v1": BlockNames.of(r"(conv)_(?:dw|pw|pad)(_\d+)(?:_|$)"),
    "mobilenet_v3": BlockNames.of(r"(expanded_conv(?:_\d+)?)_"),
    # Each stage opens with its downsampling layers, which are their own block.
    "convnext": BlockNames.of(r"(.*_stage_\d+_block_\d+)_",
                              r"(.*_downsampling)_(?:block|conv)(_\d+)"),
}

KERAS_BACKBONES = {
    # keras.applications ResNet v1 is the original 2015 net (stride on the first 1x1, conv
    # biases); `resnet50` is our v1.5, hence the `keras_` prefix.
    "keras_resnet50": KerasBackbone(A.ResNet50, "keras_resnet", "caffe_bgr", 224),
    "keras_resnet101": KerasBackbone(A.ResNet101, "keras_resnet", "caffe_bgr", 224),
    "keras_resnet152": KerasBackbone(A.ResNet152, "keras_resnet", "caffe_bgr", 224),
    "keras_resnet50v2": KerasBackbone(A.ResNet50V2, "keras_resnet", "minus_one_one", 224),
    "keras_resnet101v2": KerasBackbone(A.ResNet101V2, "keras_resnet", "minus_one_one", 224),
    "keras_resnet152v2": KerasBackbone(A.ResNet152V2, "keras_resnet", "minus_one_one", 224),
    "efficientnetv2_b0": KerasBackbone(A.EfficientNetV2B0, "efficientnetv2", "builtin", 224),
    "efficientnetv2_b1": KerasBackbone(A.EfficientNetV2B1, "efficientnetv2", "builtin", 240),
    "efficientnetv2_b2": KerasBackbone(A.EfficientNetV2B2, "efficientnetv2", "builtin", 260),
    "efficientnetv2_b3": KerasBackbone(A.EfficientNetV2B3, "efficientnetv2", "builtin", 300),
    "efficientnetv2_s": KerasBackbone(A.EfficientNetV2S, "efficientnetv2", "builtin", 384),
    "mobilenetv3_small": KerasBackbone(A.MobileNetV3Small, "mobilenet_v3", "builtin", 224),
    "mobilenetv3_large": KerasBackbone(A.MobileNetV3Large, "mobilenet_v3", "builtin", 224),
    "convnext_tiny": KerasBackbone(A.ConvNeXtTiny, "convnext", "builtin", 224),
}

# MobileNet v1 takes any width multiplier; these four have ImageNet weights.
MOBILENET_V1_ALPHAS = (0.25, 0.5, 0.75, 1.0)
MOBILENET_V1 = KerasBackbone(A.MobileNet, "mobilenet_v1", "minus_one_one", 224)
_MOBILENET_V1_NAME = re.compile(r"mobilenet_v1_(\d+(?:\.\d+)?)")

# keras.applications refuses inputs smaller than this for no-top backbones.
KERAS_MIN_IMAGE_SIZE = 32


def mobilenet_v1_name(alpha: float) -> str:
    """The registry name of MobileNet v1 with width multiplier `alpha`."""
    return f"mobilenet_v1_{alpha}"


def parse_mobilenet_v1_alpha(name: str) -> float | None:
    """The width multiplier of a `mobilenet_v1_<alpha>` name, or None for other names."""
    match = _MOBILENET_V1_NAME.fullmatch(name)
    if not match:
        return None
    alpha = float(match.group(1))
    if alpha <= 0:
        raise ValueError(f"MobileNet v1 alpha must be > 0; received: name={name!r}")
    return alpha


def lookup(name: str) -> KerasBackbone | None:
    """The `KerasBackbone` for a registry name, or None if it is not a keras backbone."""
    if name in KERAS_BACKBONES:
        return KERAS_BACKBONES[name]
    if parse_mobilenet_v1_alpha(name) is not None:
        return MOBILENET_V1
    return None


def build_keras_backbone(
    name: str, image_size: int, weights: str | None, sync_bn: bool
) -> keras.Model:
    """Builds a keras.applications backbone without top, named "backbone".

    Args:
      name: A registry name accepted by `lookup`.
      image_size: Input height and width.
      weights: None (random init), "imagenet" (download) or a path to no-top weights in
        the keras.applications layout (`.h5` or `.weights.h5`).
      sync_bn: Not supported by keras.applications layers; warned about if set.

    Returns:
      A model from scaled images to the last feature map.

    Raises:
      ValueError: If ImageNet weights cannot be downloaded or the file does not fit.
    """
    entry = lookup(name)
    if entry is None:
        raise ValueError(f"{name!r} is not a keras.applications backbone")
    if sync_bn:
        logging.warning(
            "sync_bn is ignored for %s: keras.applications builds its own "
            "BatchNormalization layers.", name)
    kwargs = dict(
        include_top=False, weights=weights, input_shape=(image_size, image_size, 3),
        pooling=None,
    )
    if entry is MOBILENET_V1:
        kwargs["alpha"] = parse_mobilenet_v1_alpha(name)
    try:
        backbone = entry.constructor(**kwargs)
    except Exception as e:  # keras.utils.get_file raises a bare Exception when offline.
        if weights is None or (weights == "imagenet" and isinstance(e, ValueError)):
            raise
        if weights == "imagenet":
            raise ValueError(
                f"Could not download ImageNet weights for {name!r} ({e}). This machine "
                "looks offline: download the keras.applications no-top weights file "
                "elsewhere and pass it with --pretrained=/path/to/file.h5 "
                "(or .weights.h5)."
            ) from e
        raise ValueError(
            f"Could not load weights {weights!r} into backbone {name!r} at "
            f"image_size={image_size}: {e}. Pass the no-top keras.applications weights "
            "of exactly this architecture (and width multiplier)."
        ) from e
    # Renamed after construction: EfficientNetV2 looks up its block table by `name`.
    backbone.name = "backbone"
    return backbone


def _build(name: str, config: ModelConfig, image_size: int,
           source: PretrainedSource) -> keras.Model:
    return build_keras_backbone(name, image_size, source.backbone_weights, config.sync_bn)


def _spec(name: str, entry: KerasBackbone) -> ModelSpec:
    return ModelSpec(
        name=name, family=entry.family, default_image_size=entry.default_image_size,
        min_image_size=KERAS_MIN_IMAGE_SIZE, input_scaling=entry.input_scaling,
        blocks=entry.blocks, imagenet_weights=True, build_backbone=_build)


def _mobilenet_v1_spec(name: str) -> ModelSpec | None:
    return None if parse_mobilenet_v1_alpha(name) is None else _spec(name, MOBILENET_V1)


register_model(
    *(_spec(name, entry) for name, entry in KERAS_BACKBONES.items()),
    *(_spec(mobilenet_v1_name(alpha), MOBILENET_V1) for alpha in MOBILENET_V1_ALPHAS),
)
register_model_rule(_mobilenet_v1_spec, "MobileNet v1 takes any width as mobilenet_v1_<alpha>")
