"""visiontrain-bench serve: figures per batch size, and TF Serving configs that parse."""

import os

import numpy as np
import pytest
from google.protobuf import text_format

from tests.helpers.runs import fit_and_save_run
from tests.helpers.serving_protos import messages
from tests.helpers.shards import write_dataset
from visiontrain.bench import serve
from visiontrain.config import DataConfig, ExportConfig
from visiontrain.serving import export
from visiontrain.training import rundir


def _figures(throughputs, p50s):
    return {str(b): {"images_per_s": t, "p50_ms": p, "p95_ms": p, "p99_ms": p, "calls": 5}
            for b, t, p in zip(serve.BATCH_SIZES, throughputs, p50s)}


def test_batching_parameters_take_the_throughput_knee_and_parse():
    figures = _figures([100, 190, 350, 600, 900, 950, 960], [10, 10.5, 11, 13, 18, 34, 67])
    text = serve.batching_parameters(figures, cpus=2)
    params = text_format.Parse(text, messages()["BatchingParameters"]())
    # 900 img/s at 16 is the first within 90% of the best (960).
    assert params.max_batch_size.value == 16
    assert params.batch_timeout_micros.value == 10000  # batch 1's p50, 10 ms
    assert params.num_batch_threads.value == 2
    assert list(params.allowed_batch_sizes) == [1, 2, 4, 8, 16]
    assert "# max_batch_size: the smallest batch reaching 90%" in text


def test_monitoring_config_parses():
    config = text_format.Parse(serve.monitoring_config(), messages()["MonitoringConfig"]())
    assert config.prometheus_config.enable
    assert config.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_summarize_percentiles_and_throughput():
    figures = serve.summarize([0.010] * 98 + [0.030, 0.050], batch=4)
    assert figures["p50_ms"] == pytest.approx(10.0) and figures["p99_ms"] > 20.0
    assert figures["images_per_s"] == pytest.approx(400.0)


@pytest.mark.slow
def test_bench_serve_times_both_paths_and_writes_beside_the_version(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 12, 12, 3), np.uint8)
    data = DataConfig(data_dir=str(tmp_path / "shards"), image_size=8, eval_crop_fraction=1.0)
    write_dataset(data.data_dir, (images, np.arange(8) % 2), (images, np.arange(8) % 2),
                  ["a", "b"])
    fit_and_save_run(str(tmp_path / "run"), data, images[:, :8, :8], np.arange(8) % 2,
                     ["a", "b"], steps=1)
    config = ExportConfig(run_dir=str(tmp_path / "run"), export_dir=str(tmp_path / "m"))
    path = export.export_run(config, rundir.load_run(config.run_dir))

    result = serve.bench_serve(path, rounds=1, calls=3, batch_sizes=(1, 2, 4), images=8)
    for mode in serve.MODES:
        assert sorted(result[mode]) == ["1", "2", "4"]
        assert all(f["calls"] == 3 and 0 < f["p50_ms"] <= f["p99_ms"]
                   for f in result[mode].values())
    written = serve.write_outputs(path, result)
    assert {os.path.dirname(p) for p in written.values()} == {config.export_dir}
    params = text_format.Parse(open(written["batching"]).read(),
                               messages()["BatchingParameters"]())
    assert params.allowed_batch_sizes[-1] == params.max_batch_size.value
    assert open(written["plot"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert export.next_version(config.export_dir) == 2  # the files are no version


def test_axis_ticks_read_as_plain_numbers():
    assert [serve._tick(v) for v in (2300.4, 150.0, 4.56, 0.0)] == ["2,300", "150", "4.56", "0"]
