"""What every `visiontrain-bench` benchmark shares: isolated, interleaved, paired timing.

This machine class is shared and noisy: its speed drifts by tens of percent within
a minute. So each configuration runs in its own subprocess (its own thread pools,
peak RSS and, for training, its one distribution strategy), the configurations run
in rounds (one of each per round, side by side), and a ratio is the median over
rounds of the ratio within a round: drift between rounds cancels out.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any


def run_in_subprocess(module: str, args: Sequence[Any]) -> dict[str, Any]:
    """`module.run_config(*args)` in a fresh Python process; returns its JSON result.

    Raises:
      RuntimeError: with the tail of the child's stderr when it fails.
    """
    # Every child, ours and the peers alike, runs with the allocator setting the tools use.
    code = (
        "import json, sys; from visiontrain import memory; memory.keep_freed_blocks(); "
        f"from {module} import run_config; "
        "print(json.dumps(run_config(*json.loads(sys.argv[1]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(args))],
        capture_output=True, text=True, check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    if done.returncode:
        raise RuntimeError(f"benchmark {module} {args[0]!r} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def interleaved_rounds(
    names: Sequence[str], rounds: int, run: Callable[[str], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Runs every name once per round, in order, for `rounds` rounds: {name: [results]}."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            results[name].append(run(name))
    return results


def median_of(results: list[dict[str, Any]], key: str) -> float:
    """The median of `key` over rounds."""
    return statistics.median(result[key] for result in results)


def paired_ratios(
    numerator: list[dict[str, Any]], denominator: list[dict[str, Any]], key: str
) -> list[float]:
    """numerator[key] / denominator[key] within each round, in round order."""
    return [a[key] / b[key] for a, b in zip(numerator, denominator, strict=True)]


def paired_ratio(
    numerator: list[dict[str, Any]], denominator: list[dict[str, Any]], key: str
) -> float:
    """The median over rounds of numerator[key] / denominator[key] within each round."""
    return statistics.median(paired_ratios(numerator, denominator, key))
