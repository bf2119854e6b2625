"""Transfer learning pieces in isolation: blocks, phases, BatchNorm freezing, layer decay."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from visiontrain.config import ModelConfig, TrainConfig
from visiontrain.models.registry import available_models, backbone_blocks, build_model, model_spec
from visiontrain.training import optim, schedules, steps, transfer


def _model(name="resnet20", size=16, classes=3, **kwargs):
    keras.utils.set_random_seed(0)
    return build_model(ModelConfig(name=name, num_classes=classes, **kwargs), size)


FAMILY_BLOCKS = {model_spec(n).family: model_spec(n).blocks for n in available_models()}


@pytest.mark.parametrize("family, layer, block", [
    ("resnet", "stage2_block3_conv1", "stage2_block3"),
    ("small_cnn", "stage3_bn", "stage3"),
    ("keras_resnet", "conv5_block3_1_conv", "conv5_block3"),
    ("efficientnetv2", "block6b_expand_conv", "block6b"),
    ("mobilenet_v1", "conv_pw_13_bn", "conv_13"),
    ("mobilenet_v1", "conv_dw_2", "conv_2"),
    ("mobilenet_v3", "expanded_conv_10_depthwise", "expanded_conv_10"),
    ("mobilenet_v3", "expanded_conv_squeeze_excite_conv", "expanded_conv"),
    ("convnext", "convnext_tiny_stage_2_block_5_depthwise_conv", "convnext_tiny_stage_2_block_5"),
    ("efficientnetv2", "top_conv", None),
    ("keras_resnet", "conv1_bn", None),
])
def test_block_key(family, layer, block):
    assert FAMILY_BLOCKS[family].key(layer) == block


def test_blocks_of_resnet20_and_mobilenet_v1():
    names = [b.name for b in backbone_blocks(_model())]
    assert names == ["stem"] + [f"stage{s}_block{b}" for s in (1, 2, 3) for b in (1, 2, 3)]
    names = [b.name for b in backbone_blocks(_model("mobilenet_v1_0.25", 32))]
    assert names == ["stem"] + [f"conv_{i}" for i in range(1, 14)]


@pytest.mark.parametrize("spec", ["last", "last:0", "some", "last:-1", "all:2"])
def test_bad_unfreeze_is_a_clear_error(spec):
    with pytest.raises(ValueError, match="--unfreeze=.*'all' or 'last:K'"):
        transfer.parse_unfreeze(spec)


def test_plan_checks_and_phase_of_step():
    config = TrainConfig(run_dir="r", epochs=5, freeze_epochs=2, unfreeze="last:3")
    plan = transfer.make_plan(config, steps_per_epoch=10)
    assert [plan.phase(s) for s in (0, 19, 20, 49)] == [1, 1, 2, 2]
    assert plan.steps_to_phase_change(15) == 5 and plan.steps_to_phase_change(20) > 1000
    assert plan.unfreeze_last == 3
    with pytest.raises(ValueError, match="--freeze_epochs=6 must be in"):
        transfer.make_plan(dataclasses.replace(config, freeze_epochs=6), 10)
    with pytest.raises(ValueError, match="too many|has 10 blocks"):
        transfer.set_phase(_model(), dataclasses.replace(plan, unfreeze_last=11), 2)


def _train_some(model, optimizer, num_steps=3):
    step_fn = steps.make_train_step(model, optimizer, num_classes=3, global_batch_size=8,
                                    label_smoothing=0.0)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (8, 16, 16, 3)), tf.uint8)
    labels = tf.constant(rng.integers(0, 3, 8), tf.int32)
    compiled = tf.function(step_fn)
    for i in range(num_steps):
        compiled(images, labels, tf.constant([0, i], tf.int64))


def _snapshot(layer):
    return {v.path: v.numpy().copy() for v in layer.weights}


def _changed(before, layer):
    return {v.path for v in layer.weights if not np.array_equal(before[v.path], v.numpy())}


def test_head_only_phase_keeps_backbone_and_bn_statistics_exactly_then_phase_two_trains():
    model = _model("small_cnn")
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    plan = transfer.TransferPlan(boundary=3)
    backbone = model.get_layer("backbone")
    transfer.set_phase(model, plan, transfer.PHASE_HEAD)
    before, head_before = _snapshot(backbone), _snapshot(model.get_layer("logits"))
    _train_some(model, optimizer)
    assert _changed(before, backbone) == set()
    assert _changed(head_before, model.get_layer("logits")) == {"logits/kernel", "logits/bias"}
    transfer.set_phase(model, plan, transfer.PHASE_FINE_TUNE)
    _train_some(model, optimizer)  # A fresh tf.function: traced with the new trainable set.
    changed = _changed(before, backbone)
    assert any(p.endswith("moving_mean") for p in changed)
    assert any(p.endswith("stage1_conv/kernel") for p in changed)


def test_unfreeze_last_k_with_frozen_batchnorm():
    # Zero-initialised last BN gammas, frozen, would block every gradient of a block.
    model = _model(zero_init_residual=False)
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    plan = transfer.TransferPlan(boundary=0, unfreeze_last=2, freeze_bn=True)
    transfer.set_phase(model, plan, transfer.PHASE_FINE_TUNE)
    trainable = {v.path.split("/")[0] for v in model.trainable_variables}
    assert trainable == {"stage3_block2_conv1", "stage3_block2_conv2", "stage3_block3_conv1",
                         "stage3_block3_conv2", "logits"}
    backbone = model.get_layer("backbone")
    before = _snapshot(backbone)
    _train_some(model, optimizer)
    changed = _changed(before, backbone)
    assert changed and all(p.split("/")[0].startswith(("stage3_block2", "stage3_block3"))
                           and p.endswith("kernel") for p in changed)


def test_layer_decay_multipliers_by_depth_from_the_top():
    model = _model()
    multipliers = optim.layer_decay_multipliers(model, 0.5)
    backbone = model.get_layer("backbone")
    assert multipliers[id(model.get_layer("logits").kernel)] == 1.0
    assert multipliers[id(backbone.get_layer("stage3_block3_conv2").kernel)] == 0.5
    assert multipliers[id(backbone.get_layer("stage3_block2_bn1").gamma)] == 0.25
    assert multipliers[id(backbone.get_layer("stem_conv").kernel)] == 0.5 ** 10


@pytest.mark.parametrize("name, kwargs", [
    ("sgd", dict(momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("adamw", dict(weight_decay=0.1)),
    ("rmsprop", dict(momentum=0.9, rho=0.9, epsilon=1e-3, weight_decay=0.1)),
    ("lamb", dict(weight_decay=0.1)),
    ("lion", dict(weight_decay=0.1)),
])
def test_layer_decay_is_a_per_variable_learning_rate(name, kwargs):
    """Same trajectory as a plain optimizer at lr * multiplier (for AdamW, unlike grad scaling)."""
    base = {"sgd": keras.optimizers.SGD, "adamw": keras.optimizers.AdamW,
            "rmsprop": keras.optimizers.RMSprop, "lamb": keras.optimizers.Lamb,
            "lion": keras.optimizers.Lion}[name]
    decayed_cls = getattr(optim, base.__name__)  # ours, named as the Keras class it extends
    init = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3)
    a, b, c = (keras.Variable(init) for _ in range(3))
    decayed = decayed_cls(learning_rate=0.1, **kwargs)
    decayed.lr_multipliers = {id(a): 0.25}
    decayed.build([a, b])
    slow = base(learning_rate=0.025, **kwargs)
    slow.build([c])
    full = base(learning_rate=0.1, **kwargs)
    d = keras.Variable(init)
    full.build([d])

    def loss(v, i):
        return tf.reduce_sum(tf.square(v - float(i)) * tf.range(1.0, 4.0))

    for i in range(4):
        for opt, vs in ((decayed, [a, b]), (slow, [c]), (full, [d])):
            with tf.GradientTape() as tape:
                total = tf.add_n([loss(v, i) for v in vs])
            opt.apply_gradients(zip(tape.gradient(total, vs), vs))
    np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), d.numpy(), rtol=1e-6)
    assert not np.allclose(a.numpy(), b.numpy())


def test_optimizer_from_config_attaches_layer_decay():
    model = _model("small_cnn")
    config = TrainConfig(run_dir="r", optimizer="adamw", layer_decay=0.8, weight_decay=0.05)
    optimizer = optim.make_optimizer(config, 0.01, model)
    optimizer.build(model.trainable_variables)
    assert isinstance(optimizer, optim.AdamW)
    assert optimizer.lr_multipliers == optim.layer_decay_multipliers(model, 0.8)
    _train_some(model, optimizer, 1)


def test_two_phase_schedule():
    config = TrainConfig(run_dir="r", epochs=5, freeze_epochs=2, base_lr=0.8, fine_tune_lr=0.08,
                         warmup_epochs=0, fine_tune_warmup_epochs=1, schedule="cosine")
    schedule = schedules.make_schedule(config, steps_per_epoch=10, global_batch_size=64)
    lr = [float(schedule(s)) for s in range(50)]
    assert lr[0] == pytest.approx(0.2)  # 0.8 * 64 / 256
    assert lr[19] < 0.01  # the head phase decays to ~0 at its end
    assert lr[20] == pytest.approx(0.02 / 10)  # fine-tune warmup restarts from 0
    assert max(lr[20:]) == pytest.approx(0.02)
    assert lr[49] < 1e-3
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert float(restored(25)) == pytest.approx(lr[25])
    assert isinstance(schedules.make_schedule(
        dataclasses.replace(config, freeze_epochs=0), 10, 64), schedules.WarmupSchedule)


@pytest.mark.slow
def test_keras_resnet50_random_weights_file_loads_layer_by_layer(tmp_path):
    """tests/models/test_models.py covers MobileNetV3Small the same way."""
    donor = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "resnet50_no_top.weights.h5")
    donor.save_weights(path)
    backbone = _model("keras_resnet50", 32, pretrained=path).get_layer("backbone")
    assert len(backbone.layers) == len(donor.layers)
    for mine, theirs in zip(backbone.layers, donor.layers):
        assert mine.name == theirs.name or not mine.weights
        for wa, wb in zip(mine.weights, theirs.weights, strict=True):
            np.testing.assert_array_equal(wa.numpy(), wb.numpy(), err_msg=wa.path)
