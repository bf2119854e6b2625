"""ResNet v1.5 (ImageNet), CIFAR ResNets and a small CNN, built from one spec table.

Registered here (`register_model` at the foot): every `RESNET_SPECS` row, and small_cnn.

ResNet v1.5 puts the bottleneck stride on the 3x3 conv (He et al. 2015 put it on the
first 1x1; v1.5 is what torchvision, Model Garden and keras-hub ship). Convolutions have
no bias (BN follows) and no L2 regulariser: the optimizer applies decoupled weight decay.
BN uses momentum 0.9 and epsilon 1e-5 (the PyTorch / Model Garden values).
Stage outputs are named `stage{i}_out` (i from 1) so endpoints need no surgery.
Stochastic depth (`drop_path`) drops the residual branch of block b of N with rate
`drop_path * b / (N - 1)`, linear in depth from 0 at the first block (timm's rule).
"""

from __future__ import annotations

import dataclasses

import keras

from visiontrain.config import ModelConfig
from visiontrain.models.blocks import BlockNames
from visiontrain.models.pretrained import PretrainedSource, load_backbone_file
from visiontrain.models.registry import ModelSpec, register_model

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class ResNetArch:
    """One row of `RESNET_SPECS`.

    Attributes:
      block: "basic" (two 3x3 convs) or "bottleneck" (1x1, 3x3, 1x1 with 4x expansion).
      stem: "imagenet" (7x7/2 conv + 3x3/2 max pool) or "cifar" (3x3/1 conv, 16 filters).
      stages: (filters, blocks) per stage; every stage after the first halves resolution.
    """

    block: str
    stem: str
    stages: tuple[tuple[int, int], ...]


RESNET_SPECS = {
    "resnet18": ResNetArch("basic", "imagenet", ((64, 2), (128, 2), (256, 2), (512, 2))),
    "resnet34": ResNetArch("basic", "imagenet", ((64, 3), (128, 4), (256, 6), (512, 3))),
    "resnet50": ResNetArch("bottleneck", "imagenet", ((64, 3), (128, 4), (256, 6), (512, 3))),
    "resnet101": ResNetArch("bottleneck", "imagenet", ((64, 3), (128, 4), (256, 23), (512, 3))),
    "resnet152": ResNetArch("bottleneck", "imagenet", ((64, 3), (128, 8), (256, 36), (512, 3))),
    # He et al. 2015 sec. 4.2: 6n+2 layers, n blocks per stage, 16/32/64 filters.
    "resnet20": ResNetArch("basic", "cifar", ((16, 3), (32, 3), (64, 3))),
    "resnet32": ResNetArch("basic", "cifar", ((16, 5), (32, 5), (64, 5))),
    "resnet56": ResNetArch("basic", "cifar", ((16, 9), (32, 9), (64, 9))),
}

# small_cnn: conv-bn-relu blocks; a 2x2 max pool follows every block but the last.
SMALL_CNN_FILTERS = (32, 64, 128)

_BOTTLENECK_EXPANSION = 4

# The blocks of transfer learning (models/blocks.py): `apply_stack` names each residual
# block stage{i}_block{j}; small_cnn has one block per stage, stage{i}_conv/bn/out/pool.
RESNET_BLOCKS = BlockNames.of(r"(stage\d+_block\d+)_")
SMALL_CNN_BLOCKS = BlockNames.of(r"(stage\d+)_")


def _conv(filters: int, kernel: int, stride: int, name: str) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )


def _bn(sync_bn: bool, name: str, zero_gamma: bool = False) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        gamma_initializer="zeros" if zero_gamma else "ones",
        synchronized=sync_bn,
        name=name,
    )


@keras.saving.register_keras_serializable(package="visiontrain")
class DropPath(keras.layers.Layer):
    """Stochastic depth (Huang et al. 2016): zeroes a residual branch per example in training.

    Kept branches are scaled by 1 / (1 - rate), so inference (the identity) sees the
    same expected value.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"DropPath rate must be in [0, 1); received: rate={rate}")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (keras.ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        draw = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        return inputs * keras.ops.floor(keep + draw) / keep

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def drop_path_rates(arch: ResNetArch, drop_path: float) -> list[float]:
    """The stochastic-depth rate of every block in order: linear from 0 to `drop_path`."""
    count = sum(blocks for _, blocks in arch.stages)
    return [drop_path * i / max(1, count - 1) for i in range(count)]


def apply_block(
    x: keras.KerasTensor,
    filters: int,
    stride: int,
    block: str,
    zero_init_residual: bool,
    sync_bn: bool,
    name: str,
    drop_path: float = 0.0,
) -> keras.KerasTensor:
    """One residual block, basic or bottleneck; projection shortcut when the shape changes.

    Args:
      x: Input feature map.
      filters: Base width (a bottleneck outputs 4x this).
      stride: Spatial stride, on the 3x3 conv (v1.5).
      block: "basic" or "bottleneck".
      zero_init_residual: Zero-init the last BN gamma so the block starts as identity
        (Goyal et al. 2017), which eases early training of deep nets.
      sync_bn: Synchronise BN statistics across replicas.
      name: Layer name prefix.
      drop_path: Stochastic-depth rate of the residual branch (0: no DropPath layer).

    Returns:
      The block output after the final ReLU.
    """
    if block == "basic":
        out_filters = filters
        y = _conv(filters, 3, stride, f"{name}_conv1")(x)
        y = _bn(sync_bn, f"{name}_bn1")(y)
        y = keras.layers.ReLU(name=f"{name}_relu1")(y)
        y = _conv(filters, 3, 1, f"{name}_conv2")(y)
        y = _bn(sync_bn, f"{name}_bn2", zero_init_residual)(y)
    elif block == "bottleneck":
        out_filters = filters * _BOTTLENECK_EXPANSION
        y = _conv(filters, 1, 1, f"{name}_conv1")(x)
        y = _bn(sync_bn, f"{name}_bn1")(y)
        y = keras.layers.ReLU(name=f"{name}_relu1")(y)
        y = _conv(filters, 3, stride, f"{name}_conv2")(y)
        y = _bn(sync_bn, f"{name}_bn2")(y)
        y = keras.layers.ReLU(name=f"{name}_relu2")(y)
        y = _conv(out_filters, 1, 1, f"{name}_conv3")(y)
        y = _bn(sync_bn, f"{name}_bn3", zero_init_residual)(y)
    else:
        raise ValueError(f"Unknown ResNet block {block!r}; known: ['basic', 'bottleneck']")
    if drop_path:
        y = DropPath(drop_path, name=f"{name}_drop_path")(y)
    shortcut = x
    if stride != 1 or x.shape[-1] != out_filters:
        shortcut = _conv(out_filters, 1, stride, f"{name}_proj_conv")(x)
        shortcut = _bn(sync_bn, f"{name}_proj_bn")(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def apply_stack(
    x: keras.KerasTensor,
    filters: int,
    blocks: int,
    stride: int,
    block: str,
    zero_init_residual: bool,
    sync_bn: bool,
    name: str,
    drop_paths: tuple[float, ...] = (),
) -> keras.KerasTensor:
    """A stage of `blocks` residual blocks; only the first one strides.

    `drop_paths` gives each block its stochastic-depth rate (empty: none).
    """
    for i in range(blocks):
        x = apply_block(
            x, filters, stride if i == 0 else 1, block, zero_init_residual, sync_bn,
            f"{name}_block{i + 1}", drop_paths[i] if drop_paths else 0.0,
        )
    return keras.layers.Identity(name=f"{name}_out")(x)


def _apply_stem(x: keras.KerasTensor, stem: str, sync_bn: bool) -> keras.KerasTensor:
    if stem == "imagenet":
        x = _conv(64, 7, 2, "stem_conv")(x)
        x = _bn(sync_bn, "stem_bn")(x)
        x = keras.layers.ReLU(name="stem_relu")(x)
        return keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    if stem == "cifar":
        x = _conv(16, 3, 1, "stem_conv")(x)
        x = _bn(sync_bn, "stem_bn")(x)
        return keras.layers.ReLU(name="stem_relu")(x)
    raise ValueError(f"Unknown ResNet stem {stem!r}; known: ['cifar', 'imagenet']")


def build_resnet_backbone(
    name: str, image_size: int, zero_init_residual: bool, sync_bn: bool,
    drop_path: float = 0.0,
) -> keras.Model:
    """The ResNet `name` from `RESNET_SPECS` as a feature-map model named "backbone".

    Args:
      name: A key of `RESNET_SPECS`.
      image_size: Input height and width.
      zero_init_residual: See `apply_block`.
      sync_bn: See `apply_block`.
      drop_path: Stochastic-depth rate of the deepest block (see `drop_path_rates`).

    Returns:
      A model from scaled images [b, s, s, 3] to the last stage's feature map.
    """
    arch = RESNET_SPECS[name]
    rates = drop_path_rates(arch, drop_path) if drop_path else []
    inputs = keras.Input((image_size, image_size, 3), name="scaled_images")
    x = _apply_stem(inputs, arch.stem, sync_bn)
    for i, (filters, blocks) in enumerate(arch.stages):
        x = apply_stack(
            x, filters, blocks, 1 if i == 0 else 2, arch.block, zero_init_residual, sync_bn,
            f"stage{i + 1}", tuple(rates[:blocks]),
        )
        rates = rates[blocks:]
    return keras.Model(inputs, x, name="backbone")


def build_small_cnn_backbone(image_size: int, sync_bn: bool) -> keras.Model:
    """A few conv-bn-relu blocks: a fast baseline and a pipeline smoke-test model.

    Args:
      image_size: Input height and width.
      sync_bn: Synchronise BN statistics across replicas.

    Returns:
      A model from scaled images to a [b, s/4, s/4, 128] feature map, named "backbone".
    """
    inputs = keras.Input((image_size, image_size, 3), name="scaled_images")
    x = inputs
    for i, filters in enumerate(SMALL_CNN_FILTERS):
        x = _conv(filters, 3, 1, f"stage{i + 1}_conv")(x)
        x = _bn(sync_bn, f"stage{i + 1}_bn")(x)
        x = keras.layers.ReLU(name=f"stage{i + 1}_out")(x)
        if i < len(SMALL_CNN_FILTERS) - 1:
            x = keras.layers.MaxPooling2D(2, name=f"stage{i + 1}_pool")(x)
    return keras.Model(inputs, x, name="backbone")


def _build_resnet(name: str, config: ModelConfig, image_size: int,
                  source: PretrainedSource) -> keras.Model:
    backbone = build_resnet_backbone(name, image_size, config.zero_init_residual,
                                     config.sync_bn, config.drop_path)
    return load_backbone_file(backbone, source, name)


def _build_small_cnn(name: str, config: ModelConfig, image_size: int,
                     source: PretrainedSource) -> keras.Model:
    return load_backbone_file(build_small_cnn_backbone(image_size, config.sync_bn), source,
                              name)


def _resnet_spec(name: str, arch: ResNetArch) -> ModelSpec:
    # CIFAR ResNets are made for 32 px images; ImageNet ones for 224 px, at a total stride of 32.
    cifar = arch.stem == "cifar"
    return ModelSpec(
        name=name, family="cifar_resnet" if cifar else "resnet",
        default_image_size=32 if cifar else 224, min_image_size=8 if cifar else 32,
        input_scaling="imagenet_mean_std", blocks=RESNET_BLOCKS, stochastic_depth=True,
        build_backbone=_build_resnet)


register_model(
    *(_resnet_spec(name, arch) for name, arch in RESNET_SPECS.items()),
    ModelSpec(name="small_cnn", family="small_cnn", default_image_size=32, min_image_size=8,
              input_scaling="imagenet_mean_std", blocks=SMALL_CNN_BLOCKS,
              build_backbone=_build_small_cnn),
)
