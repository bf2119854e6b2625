"""Flags of `visiontrain-export`, generated from the ExportConfig declarations.

Light on purpose (no TensorFlow): the tool parses its flags before importing it, so
a flag error is one line.
"""

from __future__ import annotations

from absl import flags

from visiontrain.config import ExportConfig
from visiontrain.flags.generate import define_config_flags


def define_export_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Where a run becomes a versioned SavedModel (--run_dir and --export_dir required)."""
    define_config_flags(ExportConfig, fv)
