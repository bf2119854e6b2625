"""Test helper: small class-per-folder image trees and converter configs over them."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from visiontrain.config import ConvertConfig

CLASSES = ("ant", "bee", "cow")


def write_image(path, seed: int, fmt: str = "PNG", size: int = 16) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), np.uint8)
    Image.fromarray(pixels).save(path, fmt)


def make_tree(root, per_class: int = 40, size: int = 16) -> None:
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            fmt = "JPEG" if i % 2 else "PNG"
            write_image(os.path.join(root, name, f"{i:03d}.{fmt.lower()}"), c * 1000 + i, fmt, size)


def config(tmp_path, **kwargs) -> ConvertConfig:
    args = dict(source=str(tmp_path / "src"), output=str(tmp_path / "out"), num_workers=2)
    return ConvertConfig(**{**args, **kwargs})
