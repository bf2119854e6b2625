"""--pretrained=hub:DIR of a timm checkpoint (config.json + model.safetensors), offline.

The checkpoint is written here from a keras-hub EfficientNet-B0 under timm's own tensor
names and PyTorch layouts (timm's `efficientnet.py`: `conv_stem`/`bn1`, per block
`conv_pw`/`bn1`, `conv_dw`/`bn2`, `se.conv_reduce`/`se.conv_expand`, `conv_pwl`/`bn3`,
then `conv_head`/`bn2`; the first block has no expansion so its depthwise conv pairs with
`bn1` and its projection is `conv_pw`/`bn2`). Loading it through the flag must give the
features of the network it was written from, so every tensor landed where timm keeps it.
"""

import dataclasses
import json
import re

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("keras_hub")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

import keras  # noqa: E402

from tests.helpers.flagvalues import parsed  # noqa: E402
from visiontrain.config import ModelConfig  # noqa: E402
from visiontrain.flags import configs, definitions  # noqa: E402
from visiontrain.models import hub  # noqa: E402
from visiontrain.models.registry import build_model  # noqa: E402

pytestmark = pytest.mark.slow  # Two full-width EfficientNet-B0 builds.

_BN = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
       "moving_variance": "running_var"}
_BLOCK = re.compile(r"block(\d)([a-z])_(.+)$")


def _timm_layer_name(layer_name: str, expanded: bool) -> str:
    """timm's module path for a keras-hub EfficientNet (v1 blocks) layer."""
    fixed = {"stem_conv": "conv_stem", "stem_bn": "bn1", "top_conv": "conv_head",
             "top_bn": "bn2"}
    if layer_name in fixed:
        return fixed[layer_name]
    stage, letter, part = _BLOCK.match(layer_name).groups()
    prefix = f"blocks.{int(stage) - 1}.{ord(letter) - ord('a')}."
    # Without an expansion conv, timm's DepthwiseSeparableConv numbers one conv and BN less.
    names = {"expand_conv": "conv_pw", "expand_bn": "bn1", "dwconv": "conv_dw",
             "dwconv_bn": "bn2" if expanded else "bn1", "se_reduce": "se.conv_reduce",
             "se_expand": "se.conv_expand", "project": "conv_pwl" if expanded else "conv_pw",
             "project_bn": "bn3" if expanded else "bn2"}
    return prefix + names[part]


def _timm_state_dict(backbone: keras.Model) -> dict[str, np.ndarray]:
    """The backbone's weights under timm's names, kernels in PyTorch's [out, in, h, w]."""
    state = {}
    blocks_with_expansion = {layer.name.split("_")[0] for layer in backbone.layers
                             if layer.name.endswith("_expand_conv")}
    for layer in backbone.layers:
        if not layer.weights:
            continue
        module = _timm_layer_name(layer.name, layer.name.split("_")[0] in blocks_with_expansion)
        if isinstance(layer, keras.layers.BatchNormalization):
            for w in layer.weights:
                state[f"{module}.{_BN[w.name]}"] = w.numpy()
        elif isinstance(layer, keras.layers.DepthwiseConv2D):  # [h, w, c, 1] -> [c, 1, h, w]
            state[f"{module}.weight"] = layer.kernel.numpy().transpose(2, 3, 0, 1)
        else:
            state[f"{module}.weight"] = layer.kernel.numpy().transpose(3, 2, 0, 1)
            if layer.use_bias:
                state[f"{module}.bias"] = layer.bias.numpy()
    return {k: np.ascontiguousarray(v, np.float32) for k, v in state.items()}


def _randomize_constant_initialised(backbone: keras.Model, seed: int = 0) -> None:
    """Kernels are random at init; BN parameters and statistics and biases are constants,
    which a swapped mapping (mean for var, gamma for beta) would load unnoticed."""
    rng = np.random.RandomState(seed)
    for w in backbone.weights:
        if w.name in ("gamma", "moving_variance"):
            w.assign(rng.uniform(0.8, 1.2, w.shape).astype(np.float32))
        elif w.name in ("beta", "moving_mean", "bias"):
            w.assign(rng.normal(0, 0.1, w.shape).astype(np.float32))


def test_timm_checkpoint_directory_loads_through_the_pretrained_flag(tmp_path):
    keras.backend.clear_session()
    source = build_model(ModelConfig(name="efficientnet_b0", num_classes=3), 32)
    source_backbone = source.get_layer("backbone")
    _randomize_constant_initialised(source_backbone.get_layer(hub.HUB_BACKBONE_NAME))
    state = _timm_state_dict(source_backbone.get_layer(hub.HUB_BACKBONE_NAME))
    assert len(state) == len(source_backbone.weights)
    checkpoint = tmp_path / "efficientnet_b0.ra_in1k"
    checkpoint.mkdir()
    safetensors_numpy.save_file(state, str(checkpoint / "model.safetensors"))
    (checkpoint / "config.json").write_text(json.dumps({
        "architecture": "efficientnet_b0", "num_classes": 1000, "num_features": 1280,
        "pretrained_cfg": {"input_size": [3, 224, 224], "interpolation": "bicubic",
                           "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                           "classifier": "classifier"}}))

    model_config = configs.model_config(parsed(
        [definitions.define_model_flags], "--model=efficientnet_b0",
        f"--pretrained=hub:{checkpoint}"))
    loaded = build_model(dataclasses.replace(model_config, num_classes=3), 32)

    images = tf.random.stateless_uniform((4, 32, 32, 3), (1, 2), -2.0, 2.0)
    want = source_backbone(images, training=False).numpy()
    got = loaded.get_layer("backbone")(images, training=False).numpy()
    assert got.shape == (4, 1, 1, 1280) and np.isfinite(want).all() and want.std() > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_timm_checkpoint_for_another_normalisation_is_refused(tmp_path):
    """A checkpoint published for [-1, 1] inputs must not load under ImageNet mean/std."""
    checkpoint = tmp_path / "efficientnet_b0.ra4_e3600_r224_in1k"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({
        "architecture": "efficientnet_b0", "num_classes": 1000,
        "pretrained_cfg": {"input_size": [3, 224, 224], "mean": [0.5, 0.5, 0.5],
                           "std": [0.5, 0.5, 0.5]}}))
    config = ModelConfig(name="efficientnet_b0", num_classes=3, pretrained=f"hub:{checkpoint}")
    with pytest.raises(ValueError, match=r"mean=\[0.5, 0.5, 0.5\].*ImageNet mean"):
        build_model(config, 32)
