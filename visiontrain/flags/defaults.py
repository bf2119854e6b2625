"""Flag defaults taken from the config dataclasses, the one source of every default.

Light on purpose (no TensorFlow): the data tool parses its flags before importing it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from absl import flags

from visiontrain.config import ModelConfig

# Config fields whose flag has another name; every other flag is named like its field.
FLAG_NAMES = {(ModelConfig, "name"): "model"}


def flag_name(cls: type, field: str) -> str:
    """The flag that fills field `field` of config `cls`."""
    return FLAG_NAMES.get((cls, field), field)


def field_default(cls: type, name: str) -> Any:
    """Field `name` of config `cls`'s default, as a flag default (None: no default)."""
    value = next(f.default for f in dataclasses.fields(cls) if f.name == name)
    if value is dataclasses.MISSING:
        return None
    return list(value) if isinstance(value, tuple) else value


class Definer:
    """Defines flags into `flag_values` whose defaults are fields of config `cls`.

        define = Definer(DataConfig, fv, __name__)
        define("integer", "image_size", "Side of the model input.", lower_bound=8)

    `module` is the defining module that --help groups the flags under.
    """

    def __init__(self, cls: type, flag_values: flags.FlagValues, module: str):
        self.cls, self.flag_values, self.module = cls, flag_values, module
        self.fields = {flag: field for (owner, field), flag in FLAG_NAMES.items() if owner is cls}

    def __call__(self, kind: str, name: str, help: str, **kwargs: Any) -> None:
        default = field_default(self.cls, self.fields.get(name, name))
        getattr(flags, f"DEFINE_{kind}")(
            name, default, help=help, flag_values=self.flag_values, module_name=self.module,
            **kwargs)
