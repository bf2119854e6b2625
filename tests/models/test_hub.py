"""keras-hub backbones: every family builds tiny, trains, and owns its blocks; presets load."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

keras_hub = pytest.importorskip("keras_hub")

from keras_hub.src.utils.timm.preset_loader import TimmPresetLoader  # noqa: E402

from visiontrain.config import ModelConfig  # noqa: E402
from visiontrain.models import hub  # noqa: E402
from visiontrain.models.blocks import STEM  # noqa: E402
from visiontrain.models.head import split_backbone_head  # noqa: E402
from visiontrain.models.registry import backbone_blocks, build_model, model_spec  # noqa: E402
from visiontrain.models.scaling import apply_input_scaling  # noqa: E402
from visiontrain.training import optim, transfer  # noqa: E402

# The tiny test configuration of each family and the blocks it has.
TINY = {
    "vit_tiny_test": 2, "deit_tiny_test": 2, "dinov2_tiny_test": 2, "swin_tiny_test": 4,
    "efficientnet_tiny_test": 3, "cspnet_tiny_test": 5, "hgnetv2_tiny_test": 4,
    "mobilenetv5_tiny_test": 3,
}


def _digits_32px(n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images[:n, ..., None].repeat(3, -1) / 16 * 255).astype(np.float32)
    return tf.image.resize(images, (32, 32)).numpy(), digits.target[:n]


def test_every_family_has_a_tiny_test_configuration():
    families = {e.family for e in hub.HUB_BACKBONES.values()}
    assert {hub.HUB_BACKBONES[n].family for n in TINY} == families == set(hub.FAMILY_BLOCKS)
    assert all(hub.HUB_BACKBONES[n].test_only for n in TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_family_builds_owns_its_blocks_and_trains_on_digits(name):
    keras.backend.clear_session()
    model = build_model(ModelConfig(name=name, num_classes=10), 32)
    blocks = backbone_blocks(model)
    assert blocks[0].name == STEM and len(blocks) == TINY[name] + 1, [b.name for b in blocks]
    # Every backbone weight is in exactly one block.
    owned = [id(v) for b in blocks for layer in b.layers for v in layer.weights]
    assert sorted(owned) == sorted(id(v) for v in model.get_layer("backbone").weights)
    images, labels = _digits_32px()
    optimizer = keras.optimizers.SGD(0.05)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    losses = [float(step()) for _ in range(4)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses


def test_unfreeze_last_and_layer_decay_on_transformer_blocks():
    keras.backend.clear_session()
    model = build_model(ModelConfig(name="vit_tiny_test", num_classes=3), 32)
    blocks = backbone_blocks(model)
    _, head = split_backbone_head(model)
    head_vars = {id(v) for layer in head for v in layer.weights}
    last = {id(v) for layer in blocks[-1].layers for v in layer.weights}

    plan = transfer.TransferPlan(boundary=1, unfreeze_last=1)
    transfer.set_phase(model, plan, transfer.PHASE_HEAD)
    assert {id(v) for v in model.trainable_variables} == head_vars
    transfer.set_phase(model, plan, transfer.PHASE_FINE_TUNE)
    assert {id(v) for v in model.trainable_variables} == head_vars | last
    with pytest.raises(ValueError, match="use last:3 or all"):
        transfer.set_phase(model, transfer.TransferPlan(unfreeze_last=4),
                           transfer.PHASE_FINE_TUNE)

    multipliers = optim.layer_decay_multipliers(model, 0.5)
    for depth, block in enumerate(reversed(blocks), start=1):
        for layer in block.layers:
            assert all(multipliers[id(v)] == 0.5 ** depth for v in layer.weights), block.name
    assert all(multipliers[i] == 1.0 for i in head_vars)


def test_freeze_bn_reaches_batchnorm_nested_in_blocks():
    keras.backend.clear_session()
    model = build_model(ModelConfig(name="hgnetv2_tiny_test", num_classes=3), 32)
    transfer.set_phase(model, transfer.TransferPlan(freeze_bn=True), transfer.PHASE_FINE_TUNE)
    names = [v.path for v in model.trainable_variables]
    assert not any("_bn/" in n for n in names)
    assert any("_conv/kernel" in n for n in names)


def test_image_size_must_be_a_multiple_of_the_patch_size():
    with pytest.raises(ValueError, match="use --image_size=24 or 32"):
        build_model(ModelConfig(name="vit_tiny_test", num_classes=3), 30)
    assert model_spec("vit_b16").image_size_multiple == 16


def _saved_preset(tmp_path, name: str) -> str:
    keras.backend.clear_session()
    donor = build_model(ModelConfig(name=name, num_classes=3), 32)
    preset = str(tmp_path / "preset")
    donor.get_layer("backbone").get_layer(hub.HUB_BACKBONE_NAME).save_to_preset(preset)
    return preset, donor


def test_local_preset_loads_back(tmp_path, absl_caplog):
    preset, donor = _saved_preset(tmp_path, "vit_tiny_test")
    model = build_model(
        ModelConfig(name="vit_tiny_test", num_classes=3, pretrained=f"hub:{preset}"), 32)
    assert f"Loaded the keras-hub preset {preset} into vit_tiny_test" in absl_caplog.text
    for got, want in zip(model.get_layer("backbone").weights,
                         donor.get_layer("backbone").weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_preset_of_another_architecture_is_refused(tmp_path):
    preset, _ = _saved_preset(tmp_path, "vit_tiny_test")
    with pytest.raises(ValueError, match="patch_size=.*--model=vit_b16 has patch_size=16"):
        build_model(ModelConfig(name="vit_b16", num_classes=3, pretrained=f"hub:{preset}"), 32)


def test_preset_name_offline_fails_at_once_and_names_the_directory_flag(monkeypatch):
    # A proxy on a closed loopback port: the download is refused at once, as offline.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with pytest.raises(ValueError, match="pass --pretrained=hub:DIR"):
        build_model(ModelConfig(name="vit_tiny_test", num_classes=3,
                                pretrained="hub:vit_base_patch16_224_imagenet"), 32)


def test_missing_preset_directory_and_hub_on_other_models_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no such directory"):
        build_model(ModelConfig(name="vit_tiny_test", num_classes=3,
                                pretrained=f"hub:{tmp_path}/absent"), 32)
    with pytest.raises(ValueError, match="not a keras-hub backbone"):
        build_model(ModelConfig(name="small_cnn", num_classes=3,
                                pretrained=f"hub:{tmp_path}"), 32)


# timm's published mean/std (pretrained_cfg) for the weights of each timm-converted entry:
# ImageNet statistics for EfficientNet-B0 (ra_in1k), CSPNet and HGNetV2, and mean 0 /
# std 1 for MobileNetV5's Gemma 3n encoder (timm's mobilenetv5.py since July 2025).
TIMM_MEAN_STD = {
    "imagenet_mean_std": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "zero_one": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
TIMM_ENTRY_SCALING = {
    "efficientnet_b0": "imagenet_mean_std", "cspresnet50": "imagenet_mean_std",
    "cspdarknet53": "imagenet_mean_std", "hgnetv2_b0": "imagenet_mean_std",
    "hgnetv2_b4": "imagenet_mean_std", "mobilenetv5_300m": "zero_one",
}


@pytest.mark.parametrize("scaling", sorted(TIMM_MEAN_STD))
def test_input_scaling_matches_what_keras_hub_derives_from_a_timm_config(scaling):
    mean, std = TIMM_MEAN_STD[scaling]
    timm_config = {"architecture": "efficientnet_b0", "pretrained_cfg": {
        "input_size": [3, 8, 8], "mean": mean, "std": std, "interpolation": "nearest"}}
    converter = TimmPresetLoader(None, timm_config).load_image_converter(
        keras_hub.layers.ImageConverter)
    images = np.random.RandomState(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    ours = keras.Model(inputs := keras.Input((8, 8, 3)), apply_input_scaling(inputs, scaling))
    np.testing.assert_allclose(ours(images).numpy(), np.asarray(converter(images)),
                               rtol=1e-5, atol=1e-5)
    assert [n for n, s in TIMM_ENTRY_SCALING.items() if s == scaling] == [
        n for n in TIMM_ENTRY_SCALING if hub.HUB_BACKBONES[n].input_scaling == scaling]


@pytest.mark.parametrize("name", ["swin_t", "swin_tiny_test"])
def test_swin_minimum_size_puts_one_full_window_in_the_last_stage(name):
    arch = hub.HUB_BACKBONES[name].architecture()
    stride = arch["patch_size"] * 2 ** (len(arch["depths"]) - 1)
    assert hub.HUB_BACKBONES[name].min_image_size == stride * arch["window_size"]
    with pytest.raises(ValueError, match=f"at least {stride * arch['window_size']}"):
        build_model(ModelConfig(name=name, num_classes=3),
                    stride * (arch["window_size"] - 1))


@pytest.mark.slow  # Two keras-hub Swin builds run eagerly.
def test_swin_one_stride_below_the_minimum_is_what_keras_hub_cannot_run():
    keras.backend.clear_session()
    arch = hub.HUB_BACKBONES["swin_tiny_test"].architecture()
    images = np.zeros((1, 24, 24, 3), np.float32)
    with pytest.raises(Exception, match="Incompatible shapes|Dimensions must be equal"):
        keras_hub.models.SwinTransformerBackbone(**arch, image_shape=(24, 24, 3))(images)
    keras_hub.models.SwinTransformerBackbone(**arch, image_shape=(32, 32, 3))(
        np.zeros((1, 32, 32, 3), np.float32))


def test_drop_path_reaches_swin_and_its_random_state_is_checkpointed():
    """--drop_path sets Swin's own stochastic depth: random in training (per example), the
    identity at inference; 0 turns its keras-hub default of 0.1 off. Its masks come from a
    SeedGenerator whose state is a model variable, so checkpoints keep it."""
    name, arg = "swin_tiny_test", hub.DROP_PATH_ARG["swin"]
    dropped = build_model(ModelConfig(name, num_classes=3, drop_path=0.5), 32)
    assert any(v.path.endswith("seed_generator_state") for v in dropped.variables)
    inner = dropped.get_layer("backbone").get_layer(hub.HUB_BACKBONE_NAME)
    assert inner.get_config()[arg] == 0.5
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(dropped(images, training=False),
                                  dropped(images, training=False))
    assert not np.allclose(dropped(images, training=True), dropped(images, training=True))
    plain = build_model(ModelConfig(name, num_classes=3), 32)
    assert plain.get_layer("backbone").get_layer(hub.HUB_BACKBONE_NAME).get_config()[arg] == 0


@pytest.mark.parametrize("name", ["vit_tiny_test", "mobilenetv5_tiny_test",
                                  "dinov2_tiny_test"])
def test_hub_families_without_resumable_stochastic_depth_refuse_drop_path(name):
    with pytest.raises(ValueError,
                       match=f"implemented for resnet101, .*swin_t, swin_tiny_test, not '{name}'"):
        build_model(ModelConfig(name, num_classes=3, drop_path=0.1), 32)
