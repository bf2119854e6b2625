"""Typed, frozen configuration passed from the tools down to the library.

Each setting is declared once, as a field of these dataclasses with its help, bounds or
choices, section and resume group (config/schema.py); the absl flags, docs/flags.md and
the resume policy are derived from those declarations. The flags in `visiontrain.flags`
are converted into these dataclasses once, at the edge; library code takes them (or plain
arguments) and never reads FLAGS, so everything here is usable from Python and testable
without absl.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from visiontrain.config.convert_config import ConvertConfig
from visiontrain.config.data_config import SAMPLINGS, DataConfig, parse_address
from visiontrain.config.distribution_config import STRATEGIES, DistributionConfig
from visiontrain.config.export_config import EXPORT_WEIGHTS, TFLITE_MODES, ExportConfig
from visiontrain.config.model_config import ModelConfig
from visiontrain.config.paths import HUB_PREFIX, absolute_path, absolute_paths, is_local_preset
from visiontrain.config.schema import is_path_field
from visiontrain.config.train_config import (
    AVERAGE_SOURCES,
    DTYPES,
    LOSSES,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
)

# The configs of a training run, under their keys in RUN_DIR/config.json.
RUN_CONFIGS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
                                "distribution": DistributionConfig}

__all__ = [
    "AVERAGE_SOURCES", "DTYPES", "EXPORT_WEIGHTS", "HUB_PREFIX", "LOSSES", "OPTIMIZERS",
    "RUN_CONFIGS", "SAMPLINGS", "SCHEDULES", "STRATEGIES", "TFLITE_MODES", "ConvertConfig",
    "DataConfig", "DistributionConfig", "ExportConfig", "ModelConfig", "TrainConfig",
    "absolute_path", "absolute_paths", "dumps", "from_dict", "is_local_preset",
    "is_path_field", "parse_address", "to_dict",
]


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) config dataclass."""
    return dataclasses.asdict(config)


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuilds a config dataclass from `to_dict` output; unknown keys are errors."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} keys {unknown}; known: {sorted(names)}")
    kwargs = {}
    for key, value in values.items():
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def dumps(config: Any) -> str:
    """Serialises a config dataclass to stable, human-readable JSON."""
    return json.dumps(to_dict(config), indent=2, sort_keys=True)
