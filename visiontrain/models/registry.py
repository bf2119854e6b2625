"""The model registry: every network by name, built as scaling -> backbone -> head.

    model = build_model(ModelConfig(name="resnet50", num_classes=10), image_size=224)

Every model takes float32 [batch, s, s, 3] RGB images in [0, 255] (input "images"),
scales them itself (see `scaling.py`), runs a nested backbone model named "backbone" and
the head of `head.py`, returning float32 logits (layer "logits"; pooled features are layer
"pre_logits"). The layout is Model Garden's / keras-hub's: freeze the backbone with
`model.get_layer("backbone").trainable = False` or use `split_backbone_head`.

Each family registers its models where it builds them (`register_model` at the foot of
`resnet.py`, `backbones.py`, `hub.py`), with a `ModelSpec` that carries its backbone
builder; this module knows no family. The package's `__init__` imports the family
modules, so every name is registered before anything here is looked up.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras

from visiontrain.config import HUB_PREFIX, ModelConfig
from visiontrain.models.blocks import Block, BlockNames
from visiontrain.models.head import apply_head, split_backbone_head
from visiontrain.models.pretrained import PretrainedSource, load_model_file, resolve_pretrained
from visiontrain.models.scaling import SCALINGS, apply_input_scaling

# (registry name, model config, image size, pretrained source) -> the "backbone" model,
# from scaled images to a [b, h, w, c] feature map, with `source`'s backbone weights in.
BackboneBuilder = Callable[[str, ModelConfig, int, PretrainedSource], keras.Model]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """What a pipeline or server needs to know about a registered model, and its builder.

    Attributes:
      name: Registry name.
      family: Architecture family, e.g. "resnet", "cifar_resnet", "efficientnetv2".
      default_image_size: The resolution the architecture (and its weights) was made for.
      min_image_size: The smallest input accepted (the backbone's total downsampling).
      input_scaling: A key of `scaling.SCALINGS`; the model applies it itself.
      blocks: How the family names its blocks (`models/blocks.py`).
      build_backbone: Builds the backbone (see `BackboneBuilder`).
      imagenet_weights: Whether `pretrained="imagenet"` is available.
      image_size_multiple: `image_size` must be a multiple of this (a ViT's patch size).
      hub: Whether the backbone comes from keras-hub (`hub.py`; `pretrained="hub:..."`).
      stochastic_depth: Whether `ModelConfig.drop_path` applies to the backbone.

    Example:
      register_model(ModelSpec(
          name="small_cnn", family="small_cnn", default_image_size=32, min_image_size=8,
          input_scaling="imagenet_mean_std", blocks=SMALL_CNN_BLOCKS,
          build_backbone=_build_small_cnn))
    """

    name: str
    family: str
    default_image_size: int
    min_image_size: int
    input_scaling: str
    blocks: BlockNames
    build_backbone: BackboneBuilder = dataclasses.field(repr=False)
    imagenet_weights: bool = False
    image_size_multiple: int = 1
    hub: bool = False
    stochastic_depth: bool = False

    @property
    def input_scaling_description(self) -> str:
        """Human-readable form of `input_scaling`."""
        return SCALINGS[self.input_scaling]


_MODELS: dict[str, ModelSpec] = {}
# Families whose names no table can list (MobileNet v1 at any width): each resolves a
# name it takes to its spec, else None, and has a hint for the unknown-name error.
_RULES: list[tuple[Callable[[str], ModelSpec | None], str]] = []


def register_model(*specs: ModelSpec) -> None:
    """Adds models to the registry, each under its `name`.

    Raises:
      KeyError: A name is registered already (a programming error, so not a user error).
    """
    for spec in specs:
        if spec.name in _MODELS:
            raise KeyError(
                f"Model {spec.name!r} is registered twice: by the {_MODELS[spec.name].family} "
                f"family and again by the {spec.family} family.")
        _MODELS[spec.name] = spec


def register_model_rule(resolve: Callable[[str], ModelSpec | None], hint: str) -> None:
    """Registers a family of open-ended names: `resolve` gives the spec of a name of the
    family (None for any other name); `hint` tells a user of an unknown name about it."""
    _RULES.append((resolve, hint))


def available_models() -> list[str]:
    """All registered model names (a rule's family, e.g. MobileNet v1, takes more)."""
    return sorted(_MODELS)


def model_spec(name: str) -> ModelSpec:
    """The `ModelSpec` of a registered model.

    Raises:
      ValueError: For an unknown name, listing the known ones.
    """
    if name in _MODELS:
        return _MODELS[name]
    for resolve, _ in _RULES:
        spec = resolve(name)
        if spec is not None:
            return spec
    hints = "".join(f" ({hint})" for _, hint in _RULES)
    raise ValueError(f"Unknown model {name!r}; known: {available_models()}{hints}.")


def backbone_blocks(model: keras.Model) -> list[Block]:
    """The backbone of a `build_model` model as its family's blocks, the stem first.

    The family is found by the model's name, which `build_model` sets to the registry name.

    Raises:
      ValueError: If the model has no "backbone" or its name is not a registered model.
    """
    (backbone,), _ = split_backbone_head(model)
    return model_spec(model.name).blocks.group(backbone)


def _names_where(predicate: Callable[[ModelSpec], bool]) -> list[str]:
    return [name for name in available_models() if predicate(_MODELS[name])]


def _check_args(config: ModelConfig, spec: ModelSpec, image_size: int) -> None:
    if image_size < spec.min_image_size:
        raise ValueError(
            f"image_size={image_size} is too small for {spec.name!r}, which needs at least "
            f"{spec.min_image_size} (default {spec.default_image_size}). Upscale the images "
            f"with --image_size={max(spec.min_image_size, 32)} or more, or pick a model for "
            "small inputs such as resnet20 or small_cnn."
        )
    multiple = spec.image_size_multiple
    if image_size % multiple:
        below = max(multiple, image_size // multiple * multiple)
        raise ValueError(
            f"image_size={image_size} is not a multiple of {multiple}, which {spec.name!r} "
            f"needs (its patch size or total stride); use --image_size={below} or "
            f"{below + multiple}."
        )
    if config.pretrained.startswith(HUB_PREFIX) and not spec.hub:
        raise ValueError(
            f"--pretrained={config.pretrained} loads a keras-hub preset, but {spec.name!r} is "
            f"not a keras-hub backbone; pick one of {_names_where(lambda s: s.hub)}."
        )
    if config.pretrained == "imagenet" and spec.hub:
        raise ValueError(
            f"{spec.name!r} comes from keras-hub: load its weights with "
            "--pretrained=hub:PRESET (a preset name online, or a preset or timm checkpoint "
            "directory)."
        )
    if config.num_classes < 1:
        raise ValueError(
            f"num_classes must be >= 1; received: num_classes={config.num_classes}. It comes "
            "from the dataset's label map."
        )
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); received: dropout={config.dropout}")
    if config.drop_path and not spec.stochastic_depth:
        raise ValueError(
            f"--drop_path={config.drop_path} is implemented for "
            f"{', '.join(_names_where(lambda s: s.stochastic_depth))}, not {spec.name!r}; "
            "drop --drop_path or pick one of them.")
    if config.pretrained == "imagenet" and not spec.imagenet_weights:
        raise ValueError(
            f"{spec.name!r} has no downloadable ImageNet weights. Use a keras.applications "
            "backbone (e.g. keras_resnet50, efficientnetv2_b0) or --pretrained=PATH to a "
            f"weights file of a {spec.name!r} model."
        )


def _assemble(
    spec: ModelSpec, config: ModelConfig, image_size: int, source: PretrainedSource
) -> keras.Model:
    images = keras.Input((image_size, image_size, 3), dtype="float32", name="images")
    x = apply_input_scaling(images, spec.input_scaling)
    x = spec.build_backbone(spec.name, config, image_size, source)(x)
    logits = apply_head(x, config.num_classes, config.dropout)
    return keras.Model(images, logits, name=spec.name)


def build_model(config: ModelConfig, image_size: int) -> keras.Model:
    """Builds the classifier `config.name` for square `image_size` inputs.

    Args:
      config: Model name, class count, head dropout, BN options and pretrained weights.
      image_size: Input height and width in pixels.

    Returns:
      A functional model: [b, image_size, image_size, 3] float32 in [0, 255] ->
      [b, num_classes] float32 logits.

    Raises:
      ValueError: Unknown name, too small an image size, bad class count or dropout,
        unavailable or unreadable pretrained weights.
    """
    spec = model_spec(config.name)
    _check_args(config, spec, image_size)
    source = resolve_pretrained(config.pretrained)
    model = _assemble(spec, config, image_size, source)
    if source.kind == "model_file":
        load_model_file(
            model, source, config.num_classes,
            lambda n: _assemble(
                spec, dataclasses.replace(config, num_classes=n), image_size,
                PretrainedSource("none")),
        )
    return model
