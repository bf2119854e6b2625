"""Every model family declares its blocks, and a small build of it yields exactly those."""

from __future__ import annotations

import keras
import pytest

from visiontrain.config import ModelConfig
from visiontrain.models import backbones, resnet
from visiontrain.models.blocks import STEM
from visiontrain.models.registry import available_models, backbone_blocks, build_model, model_spec

# One registered model per family at a small size, with its block count from the paper's
# architecture table (ResNet: blocks per stage; ConvNeXt-T: 3+3+9+3 blocks plus three
# downsampling layers; EfficientNetV2-B0: 1+2+2+3+5+8; MobileNetV3-Small: 11 bnecks).
REPRESENTATIVES = {
    "small_cnn": ("small_cnn", 32, len(resnet.SMALL_CNN_FILTERS)),
    "cifar_resnet": ("resnet20", 32, 9),
    "resnet": ("resnet18", 32, 8),
    "keras_resnet": ("keras_resnet50", 32, 16),
    "efficientnetv2": ("efficientnetv2_b0", 32, 21),
    "mobilenet_v1": ("mobilenet_v1_0.25", 32, 13),
    "mobilenet_v3": ("mobilenetv3_small", 32, 11),
    "convnext": ("convnext_tiny", 32, 21),
}


def test_every_family_has_a_representative_and_a_block_rule():
    # keras-hub families have their own test (test_hub.py), skipped without keras-hub.
    families = {model_spec(n).family for n in available_models() if not model_spec(n).hub}
    assert set(REPRESENTATIVES) == families
    assert {e.family for e in backbones.KERAS_BACKBONES.values()} | {
        backbones.MOBILENET_V1.family} == set(backbones.FAMILY_BLOCKS)


@pytest.mark.parametrize("family", sorted(REPRESENTATIVES))
def test_family_yields_its_declared_blocks(family):
    name, size, count = REPRESENTATIVES[family]
    keras.backend.clear_session()
    model = build_model(ModelConfig(name=name, num_classes=3), size)
    rule = model_spec(name).blocks
    blocks = backbone_blocks(model)
    names = [b.name for b in blocks]
    assert names[0] == STEM and len(names) == count + 1, names
    assert len(set(names)) == len(names), f"a block reappears after another: {names}"
    assert all(b.layers for b in blocks)
    # In order: the blocks cut the backbone's layer list without reordering or dropping any.
    assert [layer.name for b in blocks for layer in b.layers] == [
        layer.name for layer in model.get_layer("backbone").layers]
    for block in blocks[1:]:
        opener = next(layer for layer in block.layers if layer.weights)
        assert rule.key(opener.name) == block.name
    assert all(rule.key(layer.name) is None for layer in blocks[0].layers if layer.weights)
