"""Fixtures shared across the suite.

`digits` is built once per session: most training tests read it and none writes it
(a test that damages shards copies them first); so is `tiny_run`, one short training on
it. Subprocess runners live in `tests/helpers/runs.py`, imported as `tests.helpers.runs`
only.
"""

from __future__ import annotations

import logging

import pytest

from tests.helpers.runs import TINY_RUN_FLAGS, run_train, write_digits


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> str:
    """scikit-learn's digits as shards: 1500 train / 297 validation, 4 shards each, 10 classes."""
    return write_digits(str(tmp_path_factory.mktemp("digits")))


@pytest.fixture(scope="session")
def tiny_run(digits, tmp_path_factory) -> tuple[str, str]:
    """One epoch (23 steps) of the TINY recipe on `digits` by `visiontrain-train`, with a
    progress line every 4-step call: (run_dir, the tool's output). Tests only read it (pass
    evaluate a --logdir outside it); one that resumes or damages a run copies it first."""
    run_dir = str(tmp_path_factory.mktemp("tiny_run") / "run")
    result = run_train(digits, run_dir, *TINY_RUN_FLAGS)
    assert result.returncode == 0, result.stdout[-3000:]
    return run_dir, result.stdout


@pytest.fixture
def absl_caplog(caplog, monkeypatch):
    """caplog that sees absl INFO lines whatever earlier tests did to absl.

    Other tests run absl apps and TFDS in this process, which lower the absl logger's level
    or stop it propagating to the root logger that caplog listens on.
    """
    absl_logger = logging.getLogger("absl")
    monkeypatch.setattr(absl_logger, "propagate", True)
    caplog.set_level("INFO", logger="absl")
    return caplog


def pytest_collection_modifyitems(items):
    """Files with slow (end-to-end) tests first, each file's tests in their order.

    `make test` hands whole files to two workers as they free up (`--dist loadfile`):
    a long file collected last kept one worker busy for ~50 s after the other was done.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
