"""Test helper: absl flags parsed into a fresh FlagValues, away from the global FLAGS."""

from __future__ import annotations

from absl import flags


def parsed(defines, *argv: str) -> flags.FlagValues:
    """A FlagValues with each `define(fv)` applied, then `argv` parsed."""
    fv = flags.FlagValues()
    for define in defines:
        define(fv)
    fv(["prog", *argv])
    return fv
