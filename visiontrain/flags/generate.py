"""absl flags generated from the config declarations (visiontrain/config/schema.py).

Each declared field becomes one flag, registered under its section's module name so that
--help prints a section per concern. The flag's type follows the field's (str: string,
or enum when the setting has choices, so absl itself lists the allowed values; int:
integer; float; bool; tuple: list), its default is the field's, and its bounds become a
validator whose message names the flag and the interval. Light on purpose (no
TensorFlow): the data and export tools parse their flags before importing it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from absl import flags

from visiontrain.config import schema

_KINDS = {str: "string", int: "integer", float: "float", bool: "bool"}


def define_config_flags(cls: type, flag_values: flags.FlagValues = flags.FLAGS, *,
                        required: bool = True, notes: Mapping[str, str] | None = None) -> None:
    """Defines the flag of every setting config `cls` declares.

    Args:
      cls: a config dataclass.
      flag_values: where to define them.
      required: a setting without a default is a required flag; False where only one
        subcommand needs it (the conversion then names it when it is missing).
      notes: {flag: text} appended to a flag's help, for what the declaration cannot
        know without TensorFlow (the model registry's names).
    """
    notes = notes or {}
    types = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not schema.declares_flag(field):
            continue
        setting, name = schema.setting_of(field), schema.flag_of(field)
        kind, details = _kind(types[field.name], setting)
        default = flag_default(field)
        text = " ".join(part for part in (setting.help, notes.get(name, ""),
                                          bounds_sentence(setting)) if part)
        getattr(flags, f"DEFINE_{kind}")(name, default, help=text, flag_values=flag_values,
                                         module_name=setting.section.module, **details)
        if default is None and required:
            flags.mark_flag_as_required(name, flag_values=flag_values)
        if setting.bounds():
            flags.register_validator(
                name, lambda value, setting=setting: value is None or setting.within(value),
                message=f"--{name} must be {setting.bounds()}", flag_values=flag_values)


def _kind(field_type: Any, setting: schema.Setting) -> tuple[str, dict[str, Any]]:
    if setting.choices:
        return "enum", {"enum_values": list(setting.choices)}
    if typing.get_origin(field_type) is tuple:
        return "list", {}
    return _KINDS[field_type], {}


def flag_default(field: dataclasses.Field) -> Any:
    """The field's default as a flag default: None for none, a list for a tuple."""
    if field.default is dataclasses.MISSING:
        return None
    return list(field.default) if isinstance(field.default, tuple) else field.default


def bounds_sentence(setting: schema.Setting) -> str:
    """What --help says of the bounds, e.g. 'Must be in [1, 100].'; '' when unbounded."""
    return f"Must be {setting.bounds()}." if setting.bounds() else ""
