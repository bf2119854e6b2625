"""--drop_path: stochastic depth in our ResNets, linear in depth, identity at inference."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from visiontrain.config import ModelConfig, TrainConfig
from visiontrain.models import build_model
from visiontrain.models.resnet import DropPath
from visiontrain.training.checkpoints import RunCheckpoints


def drop_path_layers(model: keras.Model) -> list[DropPath]:
    """In block order (stage{i}_block{j}, fewer than 10 of each in resnet20)."""
    return sorted((layer for layer in model._flatten_layers() if isinstance(layer, DropPath)),
                  key=lambda layer: layer.name)


def test_rates_grow_linearly_from_0_at_the_first_block_to_the_flag_at_the_last():
    model = build_model(ModelConfig("resnet20", num_classes=10, drop_path=0.2), 32)
    layers = drop_path_layers(model)
    # The first block's rate is 0: it gets no layer.
    assert [layer.name for layer in layers][:2] == ["stage1_block2_drop_path",
                                                    "stage1_block3_drop_path"]
    np.testing.assert_allclose([layer.rate for layer in layers], np.linspace(0.0, 0.2, 9)[1:])
    assert not drop_path_layers(build_model(ModelConfig("resnet20", num_classes=10), 32))


def test_training_drops_whole_examples_and_rescales_inference_is_identity():
    layer = DropPath(0.25, seed=1)
    x = np.ones((4000, 2, 2, 3), np.float32)
    np.testing.assert_array_equal(layer(x, training=False), x)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    per_example = out.reshape(4000, -1)
    # Every example's branch is kept whole (scaled by 1/0.75) or dropped whole.
    np.testing.assert_allclose(np.unique(per_example), [0.0, 1 / 0.75], rtol=1e-6)
    assert (per_example.min(1) == per_example.max(1)).all()
    assert abs((per_example[:, 0] == 0).mean() - 0.25) < 0.03


def test_model_with_drop_path_round_trips_through_keras_saving(tmp_path):
    model = build_model(ModelConfig("resnet20", num_classes=3, drop_path=0.1), 16)
    path = str(tmp_path / "m.keras")
    model.save(path)
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(keras.models.load_model(path)(images), model(images), atol=1e-5)


def test_other_models_refuse_drop_path():
    # The message lists the models that have it: our ResNets and keras-hub's Swin.
    with pytest.raises(ValueError, match="--drop_path=0.1 is implemented for resnet101, "
                                         ".*resnet56, swin_t.*, not 'small_cnn'"):
        build_model(ModelConfig("small_cnn", num_classes=3, drop_path=0.1), 16)


def test_checkpoints_keep_the_drop_path_random_state(tmp_path):
    """A resumed run must draw the masks the uninterrupted run would have drawn next."""
    # Without zero-init the residual branches are not zero, so their masks show.
    model = build_model(ModelConfig("resnet20", num_classes=3, drop_path=0.5,
                                    zero_init_residual=False), 8)
    optimizer = keras.optimizers.SGD(0.1)
    ckpt = RunCheckpoints(TrainConfig(run_dir=str(tmp_path)), model, optimizer,
                          tf.distribute.get_strategy(), chief=True)
    images = np.full((16, 8, 8, 3), 100.0, np.float32)
    model(images, training=True)
    ckpt.save(1)
    want = keras.ops.convert_to_numpy(model(images, training=True))
    model(images, training=True)  # Advances the random state past the checkpoint's.
    assert ckpt.restore_latest() == 1
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(images, training=True)), want)
