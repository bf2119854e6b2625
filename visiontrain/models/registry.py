"""The model registry: every network by name, built as scaling -> backbone -> head.

    model = build_model(ModelConfig(name="resnet50", num_classes=10), image_size=224)

Every model takes float32 [batch, s, s, 3] RGB images in [0, 255] (input "images"),
scales them itself (see `scaling.py`), runs a nested backbone model named "backbone" and
the head of `head.py`, returning float32 logits (layer "logits"; pooled features are layer
"pre_logits"). The layout is Model Garden's / keras-hub's: freeze the backbone with
`model.get_layer("backbone").trainable = False` or use `split_backbone_head`.
"""

from __future__ import annotations

import dataclasses

import keras

from visiontrain.config import HUB_PREFIX, ModelConfig
from visiontrain.models import backbones, hub, resnet
from visiontrain.models.blocks import Block, BlockNames
from visiontrain.models.head import apply_head, split_backbone_head
from visiontrain.models.pretrained import PretrainedSource, load_model_file, resolve_pretrained
from visiontrain.models.scaling import SCALINGS, apply_input_scaling


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a pipeline or server needs to know about a registered model.

    Attributes:
      name: Registry name.
      family: Architecture family, e.g. "resnet", "cifar_resnet", "efficientnetv2".
      default_image_size: The resolution the architecture (and its weights) was made for.
      min_image_size: The smallest input accepted (the backbone's total downsampling).
      input_scaling: A key of `scaling.SCALINGS`; the model applies it itself.
      imagenet_weights: Whether `pretrained="imagenet"` is available.
      blocks: How the family names its blocks (`models/blocks.py`).
      image_size_multiple: `image_size` must be a multiple of this (a ViT's patch size).
      hub: Whether the backbone comes from keras-hub (`hub.py`; `pretrained="hub:..."`).
    """

    name: str
    family: str
    default_image_size: int
    min_image_size: int
    input_scaling: str
    imagenet_weights: bool
    blocks: BlockNames
    image_size_multiple: int = 1
    hub: bool = False

    @property
    def input_scaling_description(self) -> str:
        """Human-readable form of `input_scaling`."""
        return SCALINGS[self.input_scaling]


def _own_spec(name: str) -> ModelSpec:
    if name == "small_cnn":
        return ModelSpec(name, "small_cnn", 32, 8, "imagenet_mean_std", False,
                         resnet.SMALL_CNN_BLOCKS)
    if resnet.RESNET_SPECS[name].stem == "cifar":
        return ModelSpec(name, "cifar_resnet", 32, 8, "imagenet_mean_std", False,
                         resnet.RESNET_BLOCKS)
    return ModelSpec(name, "resnet", 224, 32, "imagenet_mean_std", False, resnet.RESNET_BLOCKS)


def _keras_spec(name: str) -> ModelSpec:
    entry = backbones.lookup(name)
    return ModelSpec(
        name, entry.family, entry.default_image_size, backbones.KERAS_MIN_IMAGE_SIZE,
        entry.input_scaling, True, entry.blocks,
    )


def _hub_spec(name: str) -> ModelSpec:
    entry = hub.lookup(name)
    return ModelSpec(
        name, entry.family, entry.default_image_size, entry.min_image_size,
        entry.input_scaling, False, entry.blocks, entry.size_multiple, hub=True,
    )


_REGISTERED = (
    [*resnet.RESNET_SPECS, "small_cnn"]
    + list(backbones.KERAS_BACKBONES)
    + [backbones.mobilenet_v1_name(a) for a in backbones.MOBILENET_V1_ALPHAS]
    + list(hub.HUB_BACKBONES)
)


def available_models() -> list[str]:
    """All registered model names (MobileNet v1 also takes any `mobilenet_v1_<alpha>`)."""
    return sorted(_REGISTERED)


def model_spec(name: str) -> ModelSpec:
    """The `ModelSpec` of a registered model.

    Raises:
      ValueError: For an unknown name, listing the known ones.
    """
    if name in resnet.RESNET_SPECS or name == "small_cnn":
        return _own_spec(name)
    if backbones.lookup(name) is not None:
        return _keras_spec(name)
    if hub.lookup(name) is not None:
        return _hub_spec(name)
    raise ValueError(
        f"Unknown model {name!r}; known: {available_models()} "
        "(MobileNet v1 takes any width as mobilenet_v1_<alpha>)."
    )


def backbone_blocks(model: keras.Model) -> list[Block]:
    """The backbone of a `build_model` model as its family's blocks, the stem first.

    The family is found by the model's name, which `build_model` sets to the registry name.

    Raises:
      ValueError: If the model has no "backbone" or its name is not a registered model.
    """
    (backbone,), _ = split_backbone_head(model)
    return model_spec(model.name).blocks.group(backbone)


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
            f"not a keras-hub backbone; pick one of {sorted(hub.HUB_BACKBONES)}."
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
    if config.drop_path and not (spec.family in ("resnet", "cifar_resnet")
                                 or spec.hub and hub.supports_drop_path(spec.name)):
        raise ValueError(
            f"--drop_path={config.drop_path} is implemented for our ResNets "
            f"({', '.join(resnet.RESNET_SPECS)}) and the keras-hub families "
            f"{', '.join(hub.DROP_PATH_ARG)}, not {spec.name!r}; drop --drop_path or "
            "pick one of them.")
    if config.pretrained == "imagenet" and not spec.imagenet_weights:
        raise ValueError(
            f"{spec.name!r} has no downloadable ImageNet weights. Use a keras.applications "
            "backbone (e.g. keras_resnet50, efficientnetv2_b0) or --pretrained=PATH to a "
            f"weights file of a {spec.name!r} model."
        )


def _build_backbone(
    spec: ModelSpec, config: ModelConfig, image_size: int, source: PretrainedSource
) -> keras.Model:
    weights = source.backbone_weights
    if spec.family in ("resnet", "cifar_resnet", "small_cnn") or spec.hub:
        if spec.hub:
            backbone = hub.build_hub_backbone(spec.name, image_size, source.preset,
                                              config.drop_path)
        elif spec.family == "small_cnn":
            backbone = resnet.build_small_cnn_backbone(image_size, config.sync_bn)
        else:
            backbone = resnet.build_resnet_backbone(
                spec.name, image_size, config.zero_init_residual, config.sync_bn,
                config.drop_path)
        if weights is not None:
            try:
                backbone.load_weights(weights)
            except Exception as e:  # Keras reports a mismatch as ValueError or KeyError.
                raise ValueError(
                    f"Could not load backbone weights {weights!r} into {spec.name!r}: {e}. "
                    f"Pass backbone.save_weights() output of a {spec.name!r} backbone."
                ) from e
        return backbone
    return backbones.build_keras_backbone(spec.name, image_size, weights, config.sync_bn)


def _assemble(
    spec: ModelSpec, config: ModelConfig, image_size: int, source: PretrainedSource
) -> keras.Model:
    images = keras.Input((image_size, image_size, 3), dtype="float32", name="images")
    x = apply_input_scaling(images, spec.input_scaling)
    x = _build_backbone(spec, config, image_size, source)(x)
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
