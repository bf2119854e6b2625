import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from visiontrain.evaluation import render
from visiontrain.training import summaries


def _load(logdir):
    acc = event_accumulator.EventAccumulator(
        logdir, size_guidance={event_accumulator.IMAGES: 0, event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    return acc


def test_scalars_and_images_read_back(tmp_path):
    logdir = str(tmp_path)
    summaries.write_scalars(logdir, {"loss": 0.25, "accuracy": 0.75}, step=3)
    batch = np.random.RandomState(0).randint(0, 256, (5, 8, 8, 3)).astype(np.uint8)
    summaries.write_image_grid(logdir, "augmented", batch, step=3)
    summaries.write_confusion_matrix(logdir, "confusion", np.array([[3, 1], [0, 4]]), step=3)
    acc = _load(logdir)
    tensors = acc.Tags()["tensors"]
    assert {"loss", "accuracy", "augmented", "confusion"} <= set(tensors)
    (loss,) = acc.Tensors("loss")
    assert loss.step == 3 and tf.make_ndarray(loss.tensor_proto) == pytest.approx(0.25)
    (grid,) = acc.Tensors("augmented")
    width, height, png = tf.make_ndarray(grid.tensor_proto)
    decoded = tf.io.decode_png(png).numpy()
    # 5 images of 8 px tile 3 columns x 2 rows with 2 px padding.
    assert (int(width), int(height)) == (32, 22) == (decoded.shape[1], decoded.shape[0])
    np.testing.assert_array_equal(decoded[2:10, 2:10], batch[0])
    # The confusion matrix is the evaluation figure, classes named by index when unnamed.
    (confusion,) = acc.Tensors("confusion")
    logged = tf.io.decode_png(tf.make_ndarray(confusion.tensor_proto)[2]).numpy()
    np.testing.assert_array_equal(
        logged, render.labelled_confusion_image(np.array([[3, 1], [0, 4]]), ["0", "1"]))


def test_hparams_dashboard(tmp_path):
    config = {"model": {"name": "small_cnn", "dropout": 0.1}, "train": {"epochs": 2,
              "step_decay_epochs": [3, 6], "augment": None, "jit": False}}
    summaries.write_hparams(str(tmp_path), config, {"validation/accuracy": 0.5}, step=7)
    acc = _load(str(tmp_path))
    plugin = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(plugin)
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(
        plugin["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model.name"].string_value == "small_cnn"
    assert start.hparams["train.epochs"].number_value == 2
    assert start.hparams["train.step_decay_epochs"].string_value == "3,6"
    assert start.hparams["train.jit"].bool_value is False
    (metric,) = acc.Tensors("validation/accuracy")
    assert metric.step == 7 and tf.make_ndarray(metric.tensor_proto) == pytest.approx(0.5)


def test_profile_window_writes_a_trace(tmp_path):
    window = summaries.ProfileWindow(str(tmp_path), 2, 4)
    for step in range(6):
        window.step(step)
        assert window.active == (2 <= step < 4)
        tf.reduce_sum(tf.ones([8, 8]) * step)
    window.close()
    traces = list(tmp_path.glob("plugins/profile/*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0
