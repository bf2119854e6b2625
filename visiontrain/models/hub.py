"""keras-hub backbones (issue 14) as "backbone" sub-models, with their blocks and inputs.

keras-hub is an optional extra (`pip install visiontrain[hub]`): the entries below are
always registered, and building one without keras-hub says how to install it. Each entry
is a real architecture (its keras-hub constructor arguments, or for the families keras-hub
converts from timm, the converter's own table) plus a `*_tiny_test` sibling per family:
the same code at a few blocks and width 8-32, which the tests and CI train on 32 px digits.

The keras-hub backbone is nested, renamed "hub_backbone", inside our "backbone" model,
which also turns its output into the [b, h, w, c] map `head.py` pools: the class token as
a 1x1 map for ViT, DeiT and DINOv2 (the token their pretraining heads read), Swin's token
grid reshaped, the feature map of the convolutional families as it is.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
from typing import Any, Callable

import keras
from absl import logging

from visiontrain.config import ModelConfig, is_local_preset
from visiontrain.models.blocks import BlockNames
from visiontrain.models.pretrained import PretrainedSource, load_backbone_file
from visiontrain.models.registry import ModelSpec, register_model
from visiontrain.models.scaling import IMAGENET_MEAN, IMAGENET_STD, SCALINGS


def _keras_hub():
    """keras_hub, imported at first use: importing it cost every tool 0.7-1.0 s of
    start-up, and only keras-hub models need it."""
    import keras_hub

    return keras_hub


def _timm_converter(family: str):
    """keras-hub's timm converter module of `family`."""
    return importlib.import_module(f"keras_hub.src.utils.timm.convert_{family}")


HUB_BACKBONE_NAME = "hub_backbone"
_HUB = HUB_BACKBONE_NAME


@dataclasses.dataclass(frozen=True)
class HubBackbone:
    """One keras-hub backbone class at one architecture.

    Attributes:
      cls_name: The class in `keras_hub.models`.
      family: Block rules and output kind are per family.
      architecture: Returns the constructor's keyword arguments (without the image shape);
        a function so the registry can list entries without importing keras-hub.
      input_scaling: A key of `scaling.SCALINGS`.
      default_image_size: The resolution the architecture was made for.
      size_multiple: `image_size` must be a multiple of this (the patch size, or Swin's
        patch size x 2^(stages-1)).
      min_image_size: The smallest input accepted.
      test_only: A tiny configuration for tests, not a network to train for real.
    """

    cls_name: str
    family: str
    architecture: Callable[[], dict[str, Any]]
    input_scaling: str
    default_image_size: int
    size_multiple: int
    min_image_size: int
    test_only: bool = False

    @property
    def blocks(self) -> BlockNames:
        """How this family names its blocks (see `models/blocks.py`)."""
        return FAMILY_BLOCKS[self.family]


# The blocks of each family: one transformer block (ViT, DeiT, DINOv2, Swin), one
# inverted-residual / CSP / HG block (the convolutional families). The final norm joins
# the last block; patch embeddings and stems form the stem.
FAMILY_BLOCKS = {
    "vit": BlockNames.of(rf"{_HUB}/vit_encoder/(transformer_block_\d+)$",
                         descend=(_HUB, f"{_HUB}/vit_encoder")),
    "deit": BlockNames.of(rf"{_HUB}/deit_encoder/(transformer_block_\d+)$",
                          descend=(_HUB, f"{_HUB}/deit_encoder")),
    "dinov2": BlockNames.of(rf"{_HUB}/encoder/(layers_\d+)$",
                            descend=(_HUB, f"{_HUB}/encoder")),
    "swin": BlockNames.of(rf"{_HUB}/(stage_\d+/blocks_\d+)$",
                          descend=(_HUB, rf"{_HUB}/stage_\d+")),
    "efficientnet": BlockNames.of(rf"{_HUB}/(block\d+[a-z])_", descend=(_HUB,)),
    # A CSP stage opens with its downsampling and expansion convs (block "stage_1").
    "cspnet": BlockNames.of(rf"{_HUB}/(stage_\d+_block_\d+)_",
                            rf"{_HUB}/(stage_\d+)_[a-z0-9]+_conv_(?:down|exp)",
                            descend=(_HUB,)),
    "hgnetv2": BlockNames.of(
        rf"{_HUB}/encoder/encoder_stage_\d+/(encoder_stage_\d+_(?:block_\d+|downsample))$",
        descend=(_HUB, f"{_HUB}/encoder", rf"{_HUB}/encoder/encoder_stage_\d+")),
    # keras-hub leaves these blocks to Keras's automatic names (unique within a model).
    "mobilenetv5": BlockNames.of(
        rf"{_HUB}/((?:edge_residual|universal_inverted_residual|mobile_attention)(?:_\d+)?)$",
        descend=(_HUB,)),
}

# What the backbone outputs: a token sequence whose first entry is the class token, a
# flattened square token grid, or a feature map.
FAMILY_OUTPUT = {"vit": "class_token", "deit": "class_token", "dinov2": "class_token",
                 "swin": "token_grid", "efficientnet": "map", "cspnet": "map",
                 "hgnetv2": "map", "mobilenetv5": "map"}

# EfficientNet names its input shape argument differently from the others.
_SHAPE_ARG = {"efficientnet": "input_shape"}
# The families whose keras-hub backbone has stochastic depth we can resume exactly, and
# its argument: the deepest block's rate, linear in depth (keras-hub 0.32). Swin's DropPath
# draws from a SeedGenerator, whose state is a model variable our checkpoints keep. Left
# out: MobileNetV5's DropPath draws unseeded (Keras' global generator, not checkpointed);
# DINOv2's fixes its noise shape at build time and fails on an unknown batch size; ViT and
# DeiT have none. Always passed, so --drop_path=0 means none (Swin's default is 0.1).
DROP_PATH_ARG = {"swin": "drop_path"}


def _timm(family: str, architecture: str) -> Callable[[], dict[str, Any]]:
    """The constructor arguments keras-hub's timm converter gives `architecture`."""
    return lambda: _timm_converter(family).convert_backbone_config(
        {"architecture": architecture})


def _vit(patch: int, layers: int, heads: int, dim: int) -> Callable[[], dict[str, Any]]:
    return lambda: dict(patch_size=patch, num_layers=layers, num_heads=heads,
                        hidden_dim=dim, mlp_dim=4 * dim)


def _deit(patch: int, layers: int, heads: int, dim: int) -> Callable[[], dict[str, Any]]:
    return lambda: dict(patch_size=patch, num_layers=layers, num_heads=heads,
                        hidden_dim=dim, intermediate_dim=4 * dim)


def _dinov2(layers: int, heads: int, dim: int, patch: int = 14,
            pos_size: int = 518) -> Callable[[], dict[str, Any]]:
    return lambda: dict(patch_size=patch, num_layers=layers, num_heads=heads,
                        hidden_dim=dim, intermediate_dim=4 * dim,
                        position_embedding_shape=(pos_size, pos_size, 3))


def _swin(dim: int, depths: tuple, heads: tuple, window: int) -> Callable[[], dict[str, Any]]:
    return lambda: dict(embed_dim=dim, depths=depths, num_heads=heads, window_size=window,
                        patch_size=4)


def _tiny_efficientnet() -> dict[str, Any]:
    b0 = _timm("efficientnet", "efficientnet_b0")()
    two = {k: v[:2] for k, v in b0.items() if k.startswith("stackwise_")}
    return {**b0, **two, "stackwise_input_filters": [8, 8],
            "stackwise_output_filters": [8, 16], "stackwise_num_repeats": [1, 2],
            "stackwise_expansion_ratios": [1, 2], "num_features": 32}


def _tiny_cspnet() -> dict[str, Any]:
    return {**_timm("cspnet", "cspresnet50")(), "stem_filters": 8, "stem_kernel_size": 3,
            "stem_strides": 4, "stackwise_depth": [1, 2], "stackwise_num_filters": [16, 32],
            "stackwise_strides": [1, 2]}


def _tiny_hgnetv2() -> dict[str, Any]:
    # Stage filters: [in, mid, out, blocks, layers per block, kernel].
    return {**_timm("hgnetv2", "hgnetv2_b0")(), "depths": [1, 2], "embedding_size": 8,
            "hidden_sizes": [16, 32], "stem_channels": [3, 8, 8],
            "stackwise_stage_filters": [[8, 8, 16, 1, 2, 3], [16, 8, 32, 2, 2, 3]],
            "apply_downsample": [False, True], "use_lightweight_conv_block": [False, True]}


def _tiny_mobilenetv5() -> dict[str, Any]:
    full = _timm("mobilenetv5", "mobilenetv5_300m")()
    # One edge-residual stage, then one universal-inverted-residual + attention stage.
    stages = ([0], [0, 9])
    tiny = {k: [[full[k][s][i] for i in idx] for s, idx in zip((0, 2), stages)]
            for k in full if k.startswith("stackwise_") and k != "stackwise_num_blocks"}
    tiny["stackwise_num_filters"] = [[16], [32, 32]]
    tiny["stackwise_num_heads"] = [[0], [0, 2]]
    tiny["stackwise_key_dims"] = [[0], [0, 8]]
    tiny["stackwise_value_dims"] = [[0], [0, 8]]
    return {**full, **tiny, "stackwise_num_blocks": [1, 2], "stem_size": 8,
            "num_features": 32, "msfa_output_resolution": 4}


HUB_BACKBONES = {
    "vit_b16": HubBackbone("ViTBackbone", "vit", _vit(16, 12, 12, 768),
                           "minus_one_one", 224, 16, 16),
    "vit_l16": HubBackbone("ViTBackbone", "vit", _vit(16, 24, 16, 1024),
                           "minus_one_one", 224, 16, 16),
    "deit_s16": HubBackbone("DeiTBackbone", "deit", _deit(16, 12, 6, 384),
                            "imagenet_mean_std", 224, 16, 16),
    "deit_b16": HubBackbone("DeiTBackbone", "deit", _deit(16, 12, 12, 768),
                            "imagenet_mean_std", 224, 16, 16),
    "dinov2_s14": HubBackbone("DINOV2Backbone", "dinov2", _dinov2(12, 6, 384),
                              "imagenet_mean_std", 224, 14, 14),
    "dinov2_b14": HubBackbone("DINOV2Backbone", "dinov2", _dinov2(12, 12, 768),
                              "imagenet_mean_std", 224, 14, 14),
    # keras-hub builds Swin's relative position bias at the full window, so the last
    # stage's grid must be at least the window: 4 x 2^3 x 7 = 224 px.
    "swin_t": HubBackbone("SwinTransformerBackbone", "swin",
                          _swin(96, (2, 2, 6, 2), (3, 6, 12, 24), 7),
                          "imagenet_mean_std", 224, 32, 224),
    "efficientnet_b0": HubBackbone("EfficientNetBackbone", "efficientnet",
                                   _timm("efficientnet", "efficientnet_b0"),
                                   "imagenet_mean_std", 224, 1, 32),
    "cspresnet50": HubBackbone("CSPNetBackbone", "cspnet", _timm("cspnet", "cspresnet50"),
                               "imagenet_mean_std", 256, 1, 32),
    "cspdarknet53": HubBackbone("CSPNetBackbone", "cspnet", _timm("cspnet", "cspdarknet53"),
                                "imagenet_mean_std", 256, 1, 32),
    "hgnetv2_b0": HubBackbone("HGNetV2Backbone", "hgnetv2", _timm("hgnetv2", "hgnetv2_b0"),
                              "imagenet_mean_std", 224, 1, 32),
    "hgnetv2_b4": HubBackbone("HGNetV2Backbone", "hgnetv2", _timm("hgnetv2", "hgnetv2_b4"),
                              "imagenet_mean_std", 224, 1, 32),
    # timm publishes the Gemma 3n weights (mobilenetv5_300m.gemma3n) with mean 0, std 1
    # at 768 px, and keras-hub's converters take the scaling from that config.
    "mobilenetv5_300m": HubBackbone("MobileNetV5Backbone", "mobilenetv5",
                                    _timm("mobilenetv5", "mobilenetv5_300m"),
                                    "zero_one", 768, 1, 32),
    # Tiny configurations of each family for tests (marked test_only).
    "vit_tiny_test": HubBackbone("ViTBackbone", "vit", _vit(8, 2, 2, 16),
                                 "minus_one_one", 32, 8, 8, True),
    "deit_tiny_test": HubBackbone("DeiTBackbone", "deit", _deit(8, 2, 2, 16),
                                  "imagenet_mean_std", 32, 8, 8, True),
    "dinov2_tiny_test": HubBackbone("DINOV2Backbone", "dinov2", _dinov2(2, 2, 16, 8, 32),
                                    "imagenet_mean_std", 32, 8, 8, True),
    "swin_tiny_test": HubBackbone("SwinTransformerBackbone", "swin",
                                  _swin(16, (2, 2), (2, 2), 4),
                                  "imagenet_mean_std", 32, 8, 32, True),
    "efficientnet_tiny_test": HubBackbone("EfficientNetBackbone", "efficientnet",
                                          _tiny_efficientnet, "imagenet_mean_std",
                                          32, 1, 16, True),
    "cspnet_tiny_test": HubBackbone("CSPNetBackbone", "cspnet", _tiny_cspnet,
                                    "imagenet_mean_std", 32, 1, 16, True),
    "hgnetv2_tiny_test": HubBackbone("HGNetV2Backbone", "hgnetv2", _tiny_hgnetv2,
                                     "imagenet_mean_std", 32, 1, 16, True),
    "mobilenetv5_tiny_test": HubBackbone("MobileNetV5Backbone", "mobilenetv5",
                                         _tiny_mobilenetv5, "zero_one", 32, 1, 32, True),
}


def require_keras_hub(name: str) -> None:
    """Raises a one-line install hint unless keras-hub is importable."""
    if importlib.util.find_spec("keras_hub") is None:
        raise ValueError(
            f"--model={name} is a keras-hub backbone but keras-hub is not installed; "
            "install the extra: pip install 'visiontrain[hub]'.")


def _to_map(x: keras.KerasTensor, family: str) -> keras.KerasTensor:
    """The backbone output as the [b, h, w, c] map `head.py` pools."""
    kind = FAMILY_OUTPUT[family]
    if isinstance(x, dict):  # HGNetV2 returns every stage's map; the head reads the last.
        x = list(x.values())[-1]
    if kind == "class_token":
        return keras.layers.Reshape((1, 1, x.shape[-1]), name="class_token_map")(x[:, 0])
    if kind == "token_grid":
        side = int(round(x.shape[1] ** 0.5))
        return keras.layers.Reshape((side, side, x.shape[-1]), name="token_grid_map")(x)
    return x


def _same(stored: Any, wanted: Any) -> bool:
    """Config equality up to tuples vs lists and a scalar vs its per-axis pair."""
    stored, wanted = (json.loads(json.dumps(v, default=list)) for v in (stored, wanted))
    if isinstance(stored, list) and not isinstance(wanted, list):
        return stored == [wanted] * len(stored)
    return stored == wanted


def _check_preset_architecture(name: str, entry: HubBackbone, backbone, preset: str) -> None:
    """A preset must be the architecture --model names, not only the same class."""
    config = backbone.get_config()
    for key, wanted in entry.architecture().items():
        if key in config and not _same(config[key], wanted):
            raise ValueError(
                f"--pretrained=hub:{preset} is a {type(backbone).__name__} with {key}="
                f"{config[key]!r}, but --model={name} has {key}={wanted!r}; pass the "
                "--model of the preset's architecture.")


# Each scaling as timm states it: (mean, std) per RGB channel in [0, 1] units.
_SCALING_MEAN_STD = {
    "imagenet_mean_std": (IMAGENET_MEAN, IMAGENET_STD),
    "minus_one_one": ((0.5,) * 3, (0.5,) * 3),
    "zero_one": ((0.0,) * 3, (1.0,) * 3),
}


def _check_timm_normalisation(name: str, entry: HubBackbone, preset: str) -> None:
    """A timm checkpoint must expect the inputs our scaling layer gives it.

    timm states mean/std per checkpoint (e.g. efficientnet_b0.ra4_e3600_r224_in1k wants
    [-1, 1]), while our scaling is fixed per --model; loaded under another scaling the
    weights would see shifted inputs and silently give wrong features.
    """
    path = os.path.join(preset, "config.json")
    if not os.path.isfile(path):
        return
    with open(path) as f:
        pretrained_cfg = json.load(f).get("pretrained_cfg") or {}
    if "mean" not in pretrained_cfg or "std" not in pretrained_cfg:
        return
    wanted = (tuple(pretrained_cfg["mean"]), tuple(pretrained_cfg["std"]))
    ours = _SCALING_MEAN_STD.get(entry.input_scaling)
    if ours is None or any(abs(a - b) > 1e-3 for pair in zip(ours, wanted)
                           for a, b in zip(*pair)):
        raise ValueError(
            f"--pretrained=hub:{preset} is a timm checkpoint made for inputs normalised with "
            f"mean={list(wanted[0])}, std={list(wanted[1])}, but --model={name} scales its "
            f"inputs as {SCALINGS[entry.input_scaling]}; its features would be wrong. Pass a "
            "checkpoint of this model made for that scaling.")


def _load_preset(name: str, entry: HubBackbone, preset: str, arguments: dict) -> keras.Model:
    cls = getattr(_keras_hub().models, entry.cls_name)
    local = is_local_preset(preset)
    if local:
        _check_timm_normalisation(name, entry, preset)
    try:
        backbone = cls.from_preset(preset, **arguments)
    except Exception as e:  # keras-hub raises ValueError, OSError or the HTTP client's.
        if local:
            raise ValueError(
                f"Could not load --pretrained=hub:{preset} into {name!r} ({e}). Pass a "
                f"keras-hub preset directory (save_to_preset) or a timm checkpoint "
                f"directory (config.json + model.safetensors) of a {entry.cls_name}.") from e
        raise ValueError(
            f"Could not fetch the keras-hub preset {preset!r} ({type(e).__name__}: {e}). "
            "Offline, download it on a connected machine with keras_hub.models.Backbone"
            f".from_preset({preset!r}).save_to_preset(DIR) and pass --pretrained=hub:DIR."
        ) from e
    _check_preset_architecture(name, entry, backbone, preset)
    logging.info("Loaded the keras-hub preset %s into %s: %s parameters.", preset, name,
                 f"{backbone.count_params():,}")
    return backbone


def build_hub_backbone(name: str, image_size: int, preset: str | None,
                       drop_path: float = 0.0) -> keras.Model:
    """Builds keras-hub backbone `name` as our "backbone" model.

    Args:
      name: A key of `HUB_BACKBONES`.
      image_size: Input height and width.
      preset: None (random init), a keras-hub preset name or URI, or a local directory
        holding a keras-hub preset or a timm checkpoint (config.json + model.safetensors).
      drop_path: Stochastic-depth rate of the deepest block, for the families of
        `DROP_PATH_ARG` (it overrides a preset's own).

    Returns:
      A model from scaled images to a [b, h, w, c] map, with the keras-hub backbone
      nested as "hub_backbone".

    Raises:
      ValueError: keras-hub missing, a preset that cannot be had or does not fit.
    """
    require_keras_hub(name)
    entry = HUB_BACKBONES[name]
    # The input shape, and the stochastic depth for the families that have it.
    arguments = {_SHAPE_ARG.get(entry.family, "image_shape"): (image_size, image_size, 3)}
    if entry.family in DROP_PATH_ARG:
        arguments[DROP_PATH_ARG[entry.family]] = drop_path
    if preset:
        backbone = _load_preset(name, entry, preset, arguments)
    else:
        backbone = getattr(_keras_hub().models, entry.cls_name)(**entry.architecture(),
                                                                **arguments)
    backbone.name = HUB_BACKBONE_NAME
    images = keras.Input((image_size, image_size, 3), name="scaled_images")
    features = _to_map(backbone(images), entry.family)
    return keras.Model(images, features, name="backbone")


def _build(name: str, config: ModelConfig, image_size: int,
           source: PretrainedSource) -> keras.Model:
    backbone = build_hub_backbone(name, image_size, source.preset, config.drop_path)
    return load_backbone_file(backbone, source, name)


def _spec(name: str, entry: HubBackbone) -> ModelSpec:
    return ModelSpec(
        name=name, family=entry.family, default_image_size=entry.default_image_size,
        min_image_size=entry.min_image_size, input_scaling=entry.input_scaling,
        blocks=entry.blocks, image_size_multiple=entry.size_multiple, hub=True,
        stochastic_depth=entry.family in DROP_PATH_ARG, build_backbone=_build)


register_model(*(_spec(name, entry) for name, entry in HUB_BACKBONES.items()))
