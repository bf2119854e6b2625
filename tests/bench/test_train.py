"""The train benchmark's machinery at the smallest scale (figures are not asserted)."""

from __future__ import annotations

import pytest

from visiontrain.bench.train import bench_train


@pytest.mark.slow
def test_bench_train_reports_positive_figures(tmp_path):
    figures = bench_train(num_images=140, cnn_calls=1, rounds=1,
                          configs=("cnn_real", "cnn_synthetic"), work_dir=str(tmp_path))
    assert set(figures["img_per_s"]) == {"cnn_real", "cnn_synthetic"}
    assert all(rate > 0 for rate in figures["img_per_s"].values())
    assert figures["input_stall_cnn"] < 1
    assert "input_stall_resnet50" not in figures
    assert figures["rounds"] == 1


def test_unknown_config_lists_the_known_ones():
    with pytest.raises(ValueError, match="bogus.*cnn_real"):
        bench_train(configs=("bogus",))
