"""keras-hub backbones export as a ResNet does: three signatures, TF-only reload, warmup,
TFLite. A transformer (ViT) and a convolutional family with squeeze-excite (EfficientNet)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("keras_hub")

from tests.helpers.shards import write_dataset  # noqa: E402
from visiontrain.config import DataConfig, ExportConfig, ModelConfig, to_dict  # noqa: E402
from visiontrain.models.registry import build_model  # noqa: E402
from visiontrain.serving import check, export  # noqa: E402
from visiontrain.training import rundir  # noqa: E402

pytestmark = pytest.mark.slow
NAMES = ["a", "b", "c"]


@pytest.mark.parametrize("name", ["vit_tiny_test", "efficientnet_tiny_test"])
def test_hub_backbone_exports_with_all_signatures_reload_warmup_and_tflite(tmp_path, name):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (12, 20, 24, 3)).astype(np.uint8)
    labels = np.arange(12) % 3
    data_dir = str(tmp_path / "shards")
    write_dataset(data_dir, (images, labels), (images[:6], labels[:6]), NAMES)
    data = DataConfig(data_dir=data_dir, image_size=16, eval_crop_fraction=1.0)
    model_config = ModelConfig(name=name, num_classes=3)
    model = build_model(model_config, 16)
    run_dir = str(tmp_path / "run")
    tf.train.Checkpoint(model=model).save(os.path.join(run_dir, "checkpoints", "ckpt"))
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump({"data": to_dict(data), "model": to_dict(model_config), "labels": NAMES}, f)
    with open(os.path.join(run_dir, "results.json"), "w") as f:
        json.dump({"weights": "raw", "validation": {"accuracy": 0.5}}, f)
    config = ExportConfig(run_dir=run_dir, export_dir=str(tmp_path / "models" / name),
                          top_k=2, tflite="int8")
    path = export.export_run(config, *rundir.load_run(run_dir))

    report = json.load(open(os.path.join(path, export.REPORT)))
    assert report["python_ops"] == [] and check.forbidden_ops(path) == []
    assert max(max(v.values()) for v in report["tf_only_process_max_abs_diff"].values()) <= 1e-5
    assert report["warmup_signatures_replayed"] == [
        "serving_default", "predict_images", "predict_tf_example"]
    assert report["tflite"]["calibration_images"] > 0
    loaded = tf.saved_model.load(path)
    assert sorted(loaded.signatures) == ["predict_images", "predict_tf_example",
                                         "serving_default"]
