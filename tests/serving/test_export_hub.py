"""keras-hub backbones export as a ResNet does: three signatures, TF-only reload, warmup,
TFLite. A transformer (ViT) and a convolutional family with squeeze-excite (EfficientNet)."""


import pytest
import tensorflow as tf

pytest.importorskip("keras_hub")

from tests.helpers.runs import checked_export_report, untrained_run  # noqa: E402
from visiontrain.config import ExportConfig  # noqa: E402
from visiontrain.serving import export  # noqa: E402
from visiontrain.training import rundir  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["vit_tiny_test", "efficientnet_tiny_test"])
def test_hub_backbone_exports_with_all_signatures_reload_warmup_and_tflite(tmp_path, name):
    run_dir, _ = untrained_run(tmp_path, name)
    config = ExportConfig(run_dir=run_dir, export_dir=str(tmp_path / "models" / name),
                          top_k=2, tflite="int8")
    path = export.export_run(config, rundir.load_run(run_dir))

    checked_export_report(path)
    loaded = tf.saved_model.load(path)
    assert sorted(loaded.signatures) == ["predict_images", "predict_tf_example",
                                         "serving_default"]
