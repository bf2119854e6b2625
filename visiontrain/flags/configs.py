"""The one conversion from parsed absl flags to frozen, typed configs."""

from __future__ import annotations

import dataclasses

from absl import flags

from visiontrain.config import (
    DataConfig,
    DistributionConfig,
    ExportConfig,
    ModelConfig,
    TrainConfig,
)

FLAGS = flags.FLAGS


def _take(cls: type, **renames: str):
    """Builds `cls` from the flags named like its fields (or renamed), where defined."""
    values = {}
    for field in dataclasses.fields(cls):
        name = renames.get(field.name, field.name)
        if name in FLAGS:
            value = FLAGS[name].value
            if isinstance(value, list):
                # Annotations are strings here (postponed evaluation).
                cast = int if field.type.startswith("tuple[int") else str
                value = tuple(cast(v) for v in value)
            values[field.name] = value
    return cls(**values)


def data_config() -> DataConfig:
    return _take(DataConfig)


def model_config() -> ModelConfig:
    return _take(ModelConfig, name="model")


def train_config() -> TrainConfig:
    return _take(TrainConfig)


def distribution_config() -> DistributionConfig:
    return _take(DistributionConfig)


def export_config() -> ExportConfig:
    return _take(ExportConfig)


def flagfile_text() -> str:
    """Every visiontrain flag with its effective value, as a replayable flagfile."""
    lines = []
    for module, module_flags in sorted(FLAGS.flags_by_module_dict().items()):
        if "visiontrain" not in module:
            continue
        for flag in sorted(module_flags, key=lambda f: f.name):
            if flag.value is not None:
                lines.append(flag.serialize())
    return "\n".join(lines) + "\n"
