"""Flags of `visiontrain-data`: `build` fills a ConvertConfig, `inspect` draws a grid."""

from __future__ import annotations

from absl import flags

from visiontrain.config import ConvertConfig
from visiontrain.flags.generate import define_config_flags

INSPECT_MODULE = "visiontrain.inspect"


def define_data_tool_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Every flag of `visiontrain-data` (build, verify, inspect)."""
    define_convert_flags(fv)
    define_inspect_flags(fv)


def define_convert_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """`visiontrain-data build`: --source and --output are required there only, so the
    conversion (not absl) names them when missing."""
    define_config_flags(ConvertConfig, fv, required=False)


def define_inspect_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """`visiontrain-data inspect DIR`."""
    flags.DEFINE_string("out", "", "inspect: grid PNG path (default DIR/inspect_grid.png).",
                        flag_values=fv, module_name=INSPECT_MODULE)
    flags.DEFINE_integer("samples_per_class", 8, "inspect: images per class in the grid.",
                         lower_bound=1, flag_values=fv, module_name=INSPECT_MODULE)
