"""Fixtures shared across the suite.

`digits` is built once per session: most training tests read it and none writes it
(a test that damages shards copies them first). Subprocess runners live in
`tests/helpers/runs.py`, imported as `tests.helpers.runs` only.
"""

from __future__ import annotations

import logging

import pytest

from tests.helpers.runs import write_digits


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> str:
    """scikit-learn's digits as shards: 1500 train / 297 validation, 4 shards each, 10 classes."""
    return write_digits(str(tmp_path_factory.mktemp("digits")))


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
