"""The one conversion from parsed absl flags to frozen, typed configs.

A config field is filled from the flag its declaration names (config/schema.py: its own
name, `--model` for `ModelConfig.name`, or the flag it is `filled_from`) when the tool
defined that flag, else it keeps its dataclass default; list flags become tuples of the
field's element type. Everything a config
needs beyond that (the --augment / --augment_preset pair) is resolved here too, so
a tool never patches a config after conversion.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from absl import flags

from visiontrain import config as config_lib
from visiontrain.config import (
    ConvertConfig,
    DataConfig,
    DistributionConfig,
    ExportConfig,
    ModelConfig,
    TrainConfig,
    schema,
)

FLAGS = flags.FLAGS


def from_flags(cls: type, flag_values: flags.FlagValues = FLAGS, **resolved: Any) -> Any:
    """Builds config `cls` from the parsed flags; `resolved` fields are given by the caller.

    Raises:
      ValueError: a field without a default has no value (naming its flag), a list
        element is not of the field's type, or the config's own validation fails.
    """
    types = typing.get_type_hints(cls)
    values, missing = dict(resolved), []
    for field in dataclasses.fields(cls):
        name = schema.flag_of(field)
        if field.name in resolved or name is None or name not in flag_values:
            continue
        value = flag_values[name].value
        if value is None:
            if field.default is dataclasses.MISSING:
                missing.append(f"--{name}")
        elif isinstance(value, list):
            (element, _) = typing.get_args(types[field.name])
            try:
                values[field.name] = tuple(element(v) for v in value)
            except ValueError:
                raise ValueError(f"--{name}={','.join(value)}: expected whole numbers, "
                                 "e.g. 10,20.") from None
        else:
            values[field.name] = value
    if missing:
        raise ValueError(f"{' and '.join(missing)} must be given.")
    return cls(**values)


def resolve_augment(spec: str, preset: str | None) -> str:
    """The one policy string of --augment / --augment_preset, validated.

    The two flags are mutually exclusive, so a run's recorded config names exactly the
    ops it ran; a preset resolves to its spec string.

    Raises:
      ValueError: both flags given, or the spec does not parse (the parser's message).
    """
    # Imported here, not at the top: the export and data tools convert their flags
    # before TensorFlow (which the policy module needs) is imported.
    from visiontrain.augment.policy import PRESETS, parse_policy

    if spec and preset is not None:
        raise ValueError(
            f"--augment={spec!r} and --augment_preset={preset} are mutually exclusive; "
            "pass one (a preset is a named --augment spec)."
        )
    resolved = PRESETS[preset] if preset is not None else spec
    try:
        parse_policy(resolved)
    except ValueError as err:
        raise ValueError(f"--augment={resolved!r}: {err}") from None
    return resolved


def data_config(flag_values: flags.FlagValues = FLAGS) -> DataConfig:
    return from_flags(DataConfig, flag_values)


def model_config(flag_values: flags.FlagValues = FLAGS) -> ModelConfig:
    return from_flags(ModelConfig, flag_values)


def train_config(flag_values: flags.FlagValues = FLAGS) -> TrainConfig:
    augment = resolve_augment(flag_values.augment, flag_values.augment_preset)
    return from_flags(TrainConfig, flag_values, augment=augment)


def distribution_config(flag_values: flags.FlagValues = FLAGS) -> DistributionConfig:
    return from_flags(DistributionConfig, flag_values)


def export_config(flag_values: flags.FlagValues = FLAGS) -> ExportConfig:
    return from_flags(ExportConfig, flag_values)


def convert_config(flag_values: flags.FlagValues = FLAGS) -> ConvertConfig:
    return from_flags(ConvertConfig, flag_values)


# Flags that name files or directories: written absolute into flags.txt, so the run's
# flagfile replays the same run from any working directory.
PATH_FLAGS = frozenset(
    schema.flag_of(field)
    for cls in (ConvertConfig, DataConfig, DistributionConfig, ExportConfig, ModelConfig,
                TrainConfig)
    for field in dataclasses.fields(cls) if schema.is_path_field(field)
)


def flagfile_text(flag_values: flags.FlagValues = FLAGS) -> str:
    """Every visiontrain flag with its effective value, as a replayable flagfile."""
    lines = []
    for module, module_flags in sorted(flag_values.flags_by_module_dict().items()):
        if "visiontrain" not in module:
            continue
        for flag in sorted(module_flags, key=lambda f: f.name):
            if flag.value is None:
                continue
            if flag.name in PATH_FLAGS:
                lines.append(f"--{flag.name}={config_lib.absolute_path(flag.value)}")
            else:
                lines.append(flag.serialize())
    return "\n".join(lines) + "\n"
