import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from tests.helpers.runs import checked_export_report, untrained_run
from visiontrain.config import DataConfig, ExportConfig, ModelConfig, to_dict
from visiontrain.models.registry import build_model
from visiontrain.serving import export, verify_export, warmup
from visiontrain.training import rundir
from visiontrain.training.ema import WeightAverage

pytestmark = pytest.mark.slow
NAMES = ["a", "b", "c"]
GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "small_cnn_3classes_top2.txt")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    run_dir, images = untrained_run(root, "small_cnn", weights="ema")
    config = ExportConfig(run_dir=run_dir, export_dir=str(root / "models" / "tiny"), top_k=2,
                          tflite="int8")
    path = export.export_run(config, rundir.load_run(run_dir))
    return config, path, tf.saved_model.load(path), images


def test_layout_metadata_and_report(exported):
    config, path, _, _ = exported
    assert os.path.basename(path) == "1" and sorted(os.listdir(config.export_dir)) == ["1"]
    meta = json.load(open(os.path.join(path, export.METADATA)))
    assert meta["labels"] == NAMES and meta["weights"] == "raw"
    assert meta["weights_record"]["evaluated_best"] == "ema" and "raw" in meta["weights_record"][
        "note"]
    # The run's 0.5 is the EMA weights' figure; the raw weights exported have none.
    assert meta["weights_record"]["validation"] == {"ema": 0.5} and meta["validation"] == {}
    report = checked_export_report(path)
    assert 0.0 <= report["tflite"]["top1_agreement_with_saved_model"] <= 1.0
    assert os.path.exists(os.path.join(path, report["tflite"]["file"]))


def test_signatures_match_golden(exported):
    _, path, _, _ = exported
    description = verify_export.describe_signatures(verify_export.saved_model_cli_show(path))
    assert verify_export.golden_diff(description, GOLDEN) == []
    assert "top_k_labels dtype: DT_STRING" in description


def test_versions_never_overwritten_and_auto_increments(exported):
    config, _, _, _ = exported
    with pytest.raises(FileExistsError, match="never overwritten"):
        export.export_run(ExportConfig(run_dir=config.run_dir, export_dir=config.export_dir,
                                       version="1"), rundir.load_run(config.run_dir))
    assert export.next_version(config.export_dir) == 2


def test_warmup_records_are_prediction_logs(exported):
    _, path, _, _ = exported
    records = warmup.read_warmup(os.path.join(path, warmup.WARMUP_FILE))
    assert [name for name, _ in records] == [
        "serving_default", "predict_images", "predict_tf_example"]


def test_bad_image_in_request_is_invalid_argument(exported):
    _, _, loaded, images = exported
    good = tf.io.encode_png(images[0]).numpy()
    serve = loaded.signatures["serving_default"]
    assert serve(image_bytes=tf.constant([good]))["probabilities"].shape == (1, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not JPEG, PNG, GIF, BMP or WebP"):
        serve(image_bytes=tf.constant([good, b"not an image"]))
    huge = good[:16] + (16000).to_bytes(4, "big") * 2 + good[24:]
    with pytest.raises(tf.errors.InvalidArgumentError, match="limit is 1 to 50000000"):
        serve(image_bytes=tf.constant([huge]))


def test_rest_and_grpc_requests_match_direct_call(exported):
    from tensorflow_serving.apis import predict_pb2

    _, _, loaded, images = exported
    encoded = [tf.io.encode_png(i).numpy() for i in images[:2]]
    serve = loaded.signatures["serving_default"]
    direct = serve(image_bytes=tf.constant(encoded))
    body = json.dumps({"signature_name": "serving_default", "instances": [
        {"image_bytes": {"b64": base64.b64encode(e).decode()}} for e in encoded]})
    rest = [base64.b64decode(i["image_bytes"]["b64"]) for i in json.loads(body)["instances"]]
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "tiny", "serving_default"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(encoded))
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    grpc = tf.make_ndarray(request.inputs["image_bytes"])
    for inputs in (rest, list(grpc)):
        out = serve(image_bytes=tf.constant(inputs))
        for key in direct:
            np.testing.assert_array_equal(out[key].numpy(), direct[key].numpy())


def test_predict_tool_json(exported, tmp_path):
    _, path, _, images = exported
    image = tmp_path / "x.png"
    image.write_bytes(tf.io.encode_png(images[0]).numpy())
    proc = subprocess.run(
        [sys.executable, "-m", "visiontrain.tools.predict", f"--saved_model={path}", "--json",
         str(image)], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(proc.stdout)
    assert row["file"] == str(image) and len(row["top_k"]) == 2
    assert {t["label"] for t in row["top_k"]} <= set(NAMES)


def test_load_run_restores_ema_weights_when_they_evaluated_better(tmp_path):
    data = DataConfig(data_dir=str(tmp_path / "shards"), image_size=16)
    model_config = ModelConfig(name="small_cnn", num_classes=3)
    model = build_model(model_config, 16)
    ema = WeightAverage(model, decay=0.5)
    for average in ema.averages:
        average.assign(average * 0.5 + 1.0)
    tf.train.Checkpoint(model=model, ema=ema).save(str(tmp_path / "checkpoints" / "ckpt"))
    with open(tmp_path / "config.json", "w") as f:
        json.dump({"data": to_dict(data), "model": to_dict(model_config), "labels": NAMES}, f)
    for kind in ("ema", "raw"):
        with open(tmp_path / "results.json", "w") as f:
            json.dump({"weights": kind}, f)
        run = rundir.load_run(str(tmp_path))
        wanted = ema.averages if kind == "ema" else model.weights
        assert run.exported_weights == kind
        for got, want in zip(run.model.weights, wanted):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        assert export.weights_record(run.results, run.exported_weights) == {
            "evaluated_best": kind, "exported": kind, "validation": {}}


def test_weights_record_names_an_earlier_best_checkpoint_above_the_newest():
    record = export.weights_record({
        "step": 200, "weights": "raw",
        "validation_by_weights": {"raw": {"accuracy": 0.95}, "ema": {"accuracy": 0.94}},
        "best": {"step": 100, "accuracy": 0.96, "weights": "raw"},
        "best_weights_file": "best.weights.h5"}, "raw")
    assert record["evaluated_best"] == "best_single" and record["exported"] == "raw"
    assert record["validation"] == {"raw": 0.95, "ema": 0.94, "best_single": 0.96}
    assert "0.9500" in record["note"] and "0.9600" in record["note"]
    assert "step 100" in record["note"]


def test_float16_tflite_is_half_the_size_and_agrees_with_float32():
    from visiontrain.serving import tflite

    tf.keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(name="small_cnn", num_classes=3), 16)
    images = np.random.RandomState(1).randint(0, 256, (6, 16, 16, 3)).astype(np.uint8)
    full = tflite.convert(model, 16, "float32")
    half = tflite.convert(model, 16, "float16")
    assert len(half) < 0.6 * len(full)
    expected = tf.nn.softmax(model(images.astype(np.float32), training=False)).numpy()
    np.testing.assert_allclose(tflite.predict(full, images), expected, atol=1e-5)
    got = tflite.predict(half, images)
    np.testing.assert_allclose(got, expected, atol=1e-2)
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


def _evaluate(*flags):
    return subprocess.run(
        [sys.executable, "-m", "visiontrain.tools.evaluate", *flags], capture_output=True,
        text=True, env=dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="2"),
    )


def test_evaluate_tool_on_the_run_and_on_its_export_agree(exported, tmp_path):
    config, path, _, _ = exported
    data_dir = json.load(open(os.path.join(config.run_dir, "config.json")))["data"]["data_dir"]
    reports = {}
    for kind, flags in (("run", [f"--run_dir={config.run_dir}"]),
                        ("export", [f"--saved_model={path}", f"--data_dir={data_dir}"])):
        out = tmp_path / kind
        proc = _evaluate(*flags, f"--output={out / 'report.json'}", f"--logdir={out / 'tb'}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert all(name in proc.stdout for name in NAMES)
        reports[kind] = json.load(open(out / "report.json"))
        assert reports[kind]["examples"] == 6
        picture = tf.io.decode_png(tf.io.read_file(str(out / "confusion_matrix.png"))).numpy()
        assert picture.shape[0] > 3 * 28 and picture.shape[1] > 3 * 28
        # TensorBoard gets the same pictures as the PNGs (mistakes too, when there are any).
        events = event_accumulator.EventAccumulator(str(out / "tb"))
        events.Reload()
        assert {f"validation/{name}" for name in reports[kind]["images"]} == set(
            events.Tags()["tensors"]) >= {"validation/confusion_matrix", "validation/reliability"}
        assert os.path.exists(out / "reliability.png") and "ECE" in proc.stdout
    assert reports["run"]["calibration"]["ece"] == pytest.approx(
        reports["export"]["calibration"]["ece"], abs=1e-6)
    assert reports["run"]["confusion_matrix"] == reports["export"]["confusion_matrix"]
    assert reports["run"]["accuracy"] == reports["export"]["accuracy"]


def test_evaluate_tool_refuses_two_sources_in_one_line(exported):
    config, path, _, _ = exported
    proc = _evaluate(f"--run_dir={config.run_dir}", f"--saved_model={path}")
    assert proc.returncode != 0
    assert "Pass exactly one of --run_dir and --saved_model." in proc.stderr
    assert "Traceback" not in proc.stderr
