"""The train benchmark's machinery at the smallest scale (figures are not asserted)."""

from __future__ import annotations

import ast
import inspect

import pytest

from visiontrain.bench.train import bench_train
from visiontrain.training import loop, steps

LOOP_FUNCTION = f"{steps.__name__}.make_multi_step.<locals>.train_steps"


@pytest.mark.slow
def test_bench_train_reports_positive_figures(tmp_path):
    figures = bench_train(num_images=140, cnn_calls=1, rounds=1, small_images=300,
                          configs=("cnn_real", "cnn_synthetic"), work_dir=str(tmp_path))
    assert set(figures["img_per_s"]) == {"cnn_real", "cnn_synthetic"}
    assert all(rate > 0 for rate in figures["img_per_s"].values())
    assert figures["input_stall_cnn"] < 1
    assert "input_stall_resnet50" not in figures
    assert figures["rounds"] == 1


@pytest.mark.slow
def test_r_fit_times_the_loops_function_against_model_fit(tmp_path):
    # One round: the harness tests cover pairing over rounds (tests/bench/test_harness.py).
    figures = bench_train(cnn_calls=1, rounds=1, small_images=300, work_dir=str(tmp_path),
                          configs=("resnet20_ours", "resnet20_fit"))
    assert figures["timed"] == {"resnet20_ours": LOOP_FUNCTION, "resnet20_fit": "keras.Model.fit"}
    low, high = figures["R_fit_range"]
    assert 0 < low <= figures["R_fit"] <= high
    assert "R_replicas" not in figures


def test_the_loop_runs_the_function_the_benchmark_times():
    calls = {ast.unparse(node.func) for node in ast.walk(ast.parse(inspect.getsource(loop)))
             if isinstance(node, ast.Call)}
    assert "steps.make_multi_step" in calls


def test_unknown_config_lists_the_known_ones():
    with pytest.raises(ValueError, match="bogus.*cnn_real"):
        bench_train(configs=("bogus",))
