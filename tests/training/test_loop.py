"""Fast checks of the training loop's up-front validation (no training runs)."""

from __future__ import annotations

import pytest

from visiontrain.config import ModelConfig, TrainConfig
from visiontrain.training.loop import check_options


@pytest.mark.parametrize("train, model, message", [
    (dict(jit_compile=True, deterministic=True), {}, "--jit_compile and --deterministic"),
    (dict(jit_compile=True), dict(sync_bn=True), "--jit_compile and --sync_bn"),
])
def test_xla_incompatible_options_are_rejected_naming_both_flags(train, model, message):
    with pytest.raises(ValueError, match=message):
        check_options(ModelConfig(**model), TrainConfig(run_dir="unused", **train))


@pytest.mark.parametrize("train, model", [
    (dict(jit_compile=True), {}),
    (dict(deterministic=True), dict(sync_bn=True)),
])
def test_compatible_options_pass(train, model):
    check_options(ModelConfig(**model), TrainConfig(run_dir="unused", **train))
