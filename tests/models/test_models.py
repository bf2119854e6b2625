"""Tests for the model registry: shapes, names, serialisation, training, errors, pins."""

from __future__ import annotations

import dataclasses
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from visiontrain.config import ModelConfig
from visiontrain.models import (
    available_models,
    build_model,
    model_spec,
    registry,
    split_backbone_head,
)
from visiontrain.models.blocks import BlockNames
from visiontrain.models.registry import ModelSpec, register_model
from visiontrain.models.scaling import apply_input_scaling


def _images(batch: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")


def _build(name: str, size: int, num_classes: int = 7, **kwargs) -> keras.Model:
    return build_model(ModelConfig(name=name, num_classes=num_classes, **kwargs), size)


def _check_forward(model: keras.Model, size: int, num_classes: int) -> np.ndarray:
    logits = model(_images(2, size), training=False)
    assert logits.shape == (2, num_classes)
    assert logits.dtype == "float32"
    assert np.all(np.isfinite(np.asarray(logits)))
    assert model.get_layer("pre_logits") is not None
    assert model.get_layer("logits") is not None
    assert model.get_layer("backbone").name == "backbone"
    assert model.inputs[0].name == "images"
    return np.asarray(logits)


FAST_CASES = [("small_cnn", 32), ("resnet20", 32), ("resnet18", 64), ("resnet50", 64),
              ("mobilenet_v1_0.25", 32)]
SLOW_CASES = [("mobilenetv3_small", 64), ("keras_resnet50", 32), ("keras_resnet50v2", 32),
              ("efficientnetv2_b0", 32), ("convnext_tiny", 32)]


@pytest.mark.parametrize("name,size", FAST_CASES)
def test_forward_fast(name, size):
    _check_forward(_build(name, size), size, 7)


@pytest.mark.slow
@pytest.mark.parametrize("name,size", SLOW_CASES)
def test_forward_keras_applications(name, size):
    _check_forward(_build(name, size), size, 7)


def test_every_registered_name_has_a_consistent_spec():
    names = available_models()
    assert {"resnet18", "resnet50", "resnet152", "resnet20", "resnet56", "small_cnn",
            "keras_resnet50", "efficientnetv2_s", "mobilenet_v1_0.25",
            "mobilenetv3_large", "convnext_tiny"} <= set(names)
    for name in names:
        spec = model_spec(name)
        assert spec.name == name
        assert spec.min_image_size <= spec.default_image_size
        assert spec.input_scaling_description


def _smallest_size(spec: ModelSpec) -> int:
    return -(-spec.min_image_size // spec.image_size_multiple) * spec.image_size_multiple


# Models made for 32 px build in well under a second; the rest take 1-10 s each.
@pytest.mark.parametrize("name", [
    name if model_spec(name).default_image_size <= 32
    else pytest.param(name, marks=pytest.mark.slow) for name in available_models()])
def test_every_registered_name_builds_at_its_smallest_size(name):
    spec = model_spec(name)
    if spec.hub:
        pytest.importorskip("keras_hub")
    keras.backend.clear_session()
    size = _smallest_size(spec)
    model = _build(name, size, num_classes=3)
    assert model.name == name
    assert tuple(model.inputs[0].shape) == (None, size, size, 3)
    assert model(_images(1, size), training=False).shape == (1, 3)


def test_a_name_registered_twice_is_refused_and_the_first_kept():
    first = model_spec("resnet20")
    with pytest.raises(KeyError, match="'resnet20' is registered twice: by the "
                                       "cifar_resnet family and again by the other family"):
        register_model(dataclasses.replace(first, family="other"))
    assert model_spec("resnet20") is first


def test_a_family_registered_by_its_own_module_builds(monkeypatch):
    """What a new family does: register a spec with its builder; nothing else changes."""
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    def build_toy(name, config, image_size, source):
        images = keras.Input((image_size, image_size, 3))
        features = keras.layers.Conv2D(4, 3, strides=2, name="toy_conv")(images)
        return keras.Model(images, features, name="backbone")

    register_model(ModelSpec(name="toy", family="toy", default_image_size=16, min_image_size=4,
                             input_scaling="zero_one", blocks=BlockNames.of(r"(toy)_"),
                             build_backbone=build_toy))
    assert "toy" in available_models()
    model = _build("toy", 16, num_classes=2)
    assert model.name == "toy" and model.get_layer("backbone").get_layer("toy_conv")
    assert model(_images(1, 16)).shape == (1, 2)


@pytest.mark.parametrize("name,size", [("small_cnn", 32), ("resnet20", 32)])
def test_keras_save_and_reload_gives_identical_outputs(tmp_path, name, size):
    model = _build(name, size, dropout=0.2)
    path = str(tmp_path / "m.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    x = _images(2, size)
    np.testing.assert_array_equal(model(x, training=False), reloaded(x, training=False))


def test_savedmodel_export_loads_without_custom_objects(tmp_path):
    model = _build("mobilenet_v1_0.25", 32)
    model.export(str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    x = _images(2, 32)
    np.testing.assert_allclose(loaded.serve(x), model(x, training=False), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scaling,reference", [
    ("caffe_bgr", keras.applications.resnet50.preprocess_input),
    ("minus_one_one", keras.applications.mobilenet.preprocess_input),
    ("imagenet_mean_std",
     lambda x: (x / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])),
])
def test_input_scaling_matches_the_backbone_convention_and_serialises(tmp_path, scaling,
                                                                       reference):
    images = keras.Input((8, 8, 3), name="images")
    model = keras.Model(images, apply_input_scaling(images, scaling))
    x = _images(2, 8)
    np.testing.assert_allclose(model(x), reference(x.copy()), rtol=1e-5, atol=1e-3)
    model.save(str(tmp_path / "s.keras"))
    reloaded = keras.saving.load_model(str(tmp_path / "s.keras"))
    np.testing.assert_array_equal(reloaded(x), model(x))


@pytest.mark.parametrize("name,size", [("small_cnn", 32), ("resnet20", 32)])
def test_one_gradient_step_changes_backbone_and_head(name, size):
    model = _build(name, size, num_classes=3)
    before = [w.numpy().copy() for w in model.trainable_weights]
    optimizer = keras.optimizers.SGD(0.1)
    labels = np.array([0, 1, 2, 0])
    with tf.GradientTape() as tape:
        logits = model(_images(4, size), training=True)
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights),
                                  model.trainable_weights))
    changed = {id(w) for w, b in zip(model.trainable_weights, before)
               if not np.array_equal(w.numpy(), b)}
    assert changed & {id(w) for w in model.get_layer("backbone").trainable_weights}
    assert changed >= {id(w) for w in model.get_layer("logits").trainable_weights}


def test_unknown_name_lists_known_models():
    with pytest.raises(ValueError, match="Unknown model 'resnet19'.*resnet18") as raised:
        _build("resnet19", 32)
    assert all(repr(name) in str(raised.value) for name in available_models())
    assert "mobilenet_v1_<alpha>" in str(raised.value)
    with pytest.raises(ValueError, match="Unknown model 'mobilenet_v2'"):
        model_spec("mobilenet_v2")


@pytest.mark.parametrize("name,size,minimum", [("resnet18", 16, 32), ("resnet20", 4, 8),
                                               ("mobilenetv3_small", 24, 32)])
def test_too_small_image_size_says_minimum_and_flag(name, size, minimum):
    with pytest.raises(ValueError, match=f"at least {minimum}.*--image_size"):
        _build(name, size)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_classes=0), "num_classes must be >= 1"),
    (dict(dropout=1.0), "dropout must be in"),
    (dict(pretrained="imagenet"), "no downloadable ImageNet weights"),
    (dict(pretrained="/nonexistent/w.weights.h5"), "no such file"),
])
def test_bad_config_errors(kwargs, match):
    config = dataclasses.replace(ModelConfig(name="small_cnn", num_classes=3), **kwargs)
    with pytest.raises(ValueError, match=match):
        build_model(config, 32)


def test_imagenet_download_failure_is_a_clear_offline_error(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example: Name or service not known")

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", offline)
    with pytest.raises(ValueError, match="offline.*--pretrained="):
        _build("mobilenet_v1_0.25", 32, pretrained="imagenet")


def test_resnet_param_count_pins():
    # torchvision's ResNet-18/50 trainable counts; BN moving stats are the rest.
    resnet18 = _build("resnet18", 224, num_classes=1000)
    resnet50 = _build("resnet50", 224, num_classes=1000)
    trainable = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights)  # noqa: E731
    assert trainable(resnet18) == 11_689_512
    assert resnet18.count_params() == 11_699_112
    assert trainable(resnet50) == 25_557_032
    assert resnet50.count_params() == 25_610_152
    # He et al.: ResNet-20 ~0.27M (projection shortcuts add 2.7K over option A).
    assert _build("resnet20", 32, num_classes=10).count_params() == 274_042


def test_resnet_endpoints_at_stride_4_8_16_32():
    backbone = _build("resnet50", 64).get_layer("backbone")
    shapes = [tuple(backbone.get_layer(f"stage{i}_out").output.shape) for i in range(1, 5)]
    assert shapes == [(None, 16, 16, 256), (None, 8, 8, 512), (None, 4, 4, 1024),
                      (None, 2, 2, 2048)]


@pytest.mark.parametrize("zero_init", [True, False])
def test_zero_init_residual_zeroes_last_bn_gamma_of_each_block(zero_init):
    backbone = _build("resnet20", 32, zero_init_residual=zero_init).get_layer("backbone")
    last_bns = [layer for layer in backbone.layers if layer.name.endswith("_bn2")]
    assert len(last_bns) == 9
    for bn in last_bns:
        assert np.all(bn.gamma.numpy() == (0.0 if zero_init else 1.0))
    assert np.all(backbone.get_layer("stage1_block1_bn1").gamma.numpy() == 1.0)


def test_sync_bn_and_bn_hyperparameters():
    backbone = _build("resnet20", 32, sync_bn=True).get_layer("backbone")
    bns = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(bn.synchronized for bn in bns)
    assert all(bn.momentum == 0.9 and bn.epsilon == 1e-5 for bn in bns)


def test_logits_are_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _build("small_cnn", 32)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("pre_logits").compute_dtype == "float16"
    assert model(_images(2, 32)).dtype == "float32"


def test_split_backbone_head_and_freezing():
    model = _build("resnet20", 32)
    backbone_layers, head_layers = split_backbone_head(model)
    assert [layer.name for layer in backbone_layers] == ["backbone"]
    assert [layer.name for layer in head_layers] == ["pre_logits", "head_dropout", "logits"]
    backbone_layers[0].trainable = False
    assert {w.path for w in model.trainable_weights} == {"logits/kernel", "logits/bias"}


def test_mobilenet_v1_any_alpha():
    assert model_spec("mobilenet_v1_0.35").family == "mobilenet_v1"
    backbone = _build("mobilenet_v1_0.35", 32).get_layer("backbone")
    assert backbone.output.shape[-1] == int(1024 * 0.35)


def _assert_same_weights(a: keras.Model, b: keras.Model) -> None:
    assert len(a.weights) == len(b.weights)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy(), err_msg=wa.path)


@pytest.mark.slow
def test_pretrained_keras_applications_no_top_weights_file(tmp_path):
    donor = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(64, 64, 3))
    path = str(tmp_path / "mnv3_no_top.weights.h5")
    donor.save_weights(path)
    model = _build("mobilenetv3_small", 64, pretrained=path)
    _assert_same_weights(model.get_layer("backbone"), donor)


def test_pretrained_whole_model_same_and_different_head(tmp_path, caplog):
    source = _build("small_cnn", 32, num_classes=10)
    path = str(tmp_path / "run.weights.h5")
    source.save_weights(path)
    _assert_same_weights(_build("small_cnn", 32, num_classes=10, pretrained=path), source)
    with caplog.at_level(logging.WARNING):
        model = _build("small_cnn", 32, num_classes=4, pretrained=path)
    _assert_same_weights(model.get_layer("backbone"), source.get_layer("backbone"))
    assert model.get_layer("logits").kernel.shape == (128, 4)
    assert "head was replaced" in caplog.text


def test_pretrained_run_directory_loads_its_best_weights(tmp_path, absl_caplog):
    """--pretrained=RUN_DIR: the run's best.weights.h5, the file training publishes."""
    from visiontrain.training.checkpoints import BEST_WEIGHTS

    source = _build("small_cnn", 32, num_classes=10)
    (tmp_path / "run").mkdir()
    source.save_weights(str(tmp_path / "run" / BEST_WEIGHTS))
    model = _build("small_cnn", 32, num_classes=10, pretrained=str(tmp_path / "run"))
    _assert_same_weights(model, source)
    assert f"loading its best weights, {tmp_path / 'run' / BEST_WEIGHTS}" in absl_caplog.text
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(ValueError, match="is a directory without best.weights.h5"):
        _build("small_cnn", 32, pretrained=str(tmp_path / "empty_run"))


def test_pretrained_backbone_file_of_our_own_resnet_and_mismatch(tmp_path):
    source = _build("resnet20", 32).get_layer("backbone")
    path = str(tmp_path / "backbone.weights.h5")
    source.save_weights(path)
    _assert_same_weights(_build("resnet20", 32, pretrained=path).get_layer("backbone"), source)
    with pytest.raises(ValueError, match="Could not load backbone weights"):
        _build("resnet32", 32, pretrained=path)


def test_keras_hub_is_imported_only_by_a_hub_model():
    # It would add about 0.8 s to every tool's start-up.
    import subprocess
    import sys

    probe = ("import sys, visiontrain.tools.train, visiontrain.models.registry; "
             "print('keras_hub' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split()[-1] == "False"


def test_a_hub_model_without_keras_hub_installed_says_which_extra(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "keras_hub" else find_spec(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'visiontrain\[hub\]'"):
        _build("vit_tiny_test", 32)
