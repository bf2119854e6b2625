"""Path settings are stored absolute: a config written to a run's records must mean the
same file from any working directory."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from visiontrain.config.schema import is_path_field

# Values of path settings that name no local file.
_NOT_PATHS = ("", "imagenet", "balanced")
# --pretrained=hub:PRESET loads a keras-hub preset (models/hub.py).
HUB_PREFIX = "hub:"


def absolute_path(value: str) -> str:
    """`value` made absolute if it is a local path; '' (unset), 'imagenet', 'balanced'
    (--class_weights), 'tfds:NAME' and URLs such as gs://bucket/dir are kept as they are.
    'hub:X' (a keras-hub preset) keeps a preset name as it is and makes a directory
    absolute."""
    if value.startswith(HUB_PREFIX):
        preset = value[len(HUB_PREFIX):]
        return HUB_PREFIX + (absolute_path(preset) if is_local_preset(preset) else preset)
    if value in _NOT_PATHS or value.startswith("tfds:") or "://" in value:
        return value
    return os.path.abspath(value)


def is_local_preset(preset: str) -> bool:
    """Whether a keras-hub preset (the X of 'hub:X') names a local directory.

    Preset names ("vit_base_patch16_224_imagenet") have no path separator and URIs
    ("kaggle://...", "hf://...") have a scheme; anything else is a directory.
    """
    if "://" in preset:
        return False
    return os.sep in preset or preset.startswith(".") or os.path.isdir(preset)


def absolute_paths(config: Any) -> None:
    """Rewrites the path fields of a frozen config in place (from __post_init__) as absolute."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if is_path_field(field) and isinstance(value, str):
            object.__setattr__(config, field.name, absolute_path(value))
