"""The shared benchmark machinery: rounds, paired ratios, subprocess isolation."""

import pytest

from visiontrain.bench import harness


def test_rounds_interleave_the_configurations():
    calls = []
    results = harness.interleaved_rounds(
        ["a", "b"], 3, lambda name: calls.append(name) or {"rate": len(calls)}
    )
    assert calls == ["a", "b"] * 3
    assert [r["rate"] for r in results["a"]] == [1, 3, 5]


def test_paired_ratio_cancels_drift_between_rounds():
    # The machine halves its speed in round 2; within each round a is 2x b.
    a = [{"rate": 200.0}, {"rate": 100.0}, {"rate": 210.0}]
    b = [{"rate": 100.0}, {"rate": 50.0}, {"rate": 105.0}]
    assert harness.paired_ratio(a, b, "rate") == pytest.approx(2.0)
    assert harness.median_of(a, "rate") == 200.0


def test_subprocess_result_and_failure():
    result = harness.run_in_subprocess("tests.helpers.bench_child", ["ok", 3])
    assert result == {"name": "ok", "doubled": 6}
    with pytest.raises(RuntimeError, match="(?s)'boom' failed:.*ValueError: boom"):
        harness.run_in_subprocess("tests.helpers.bench_child", ["boom", 0])
