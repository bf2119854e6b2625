"""scikit-learn's 1,797 digit scans as a class-per-folder PNG tree: real images, no download.

The demo (`visiontrain-demo`) starts from this tree, and tests and benchmarks use it as
a small real dataset.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def write_digits_tree(out_dir: str, seed: int, val_fraction: float) -> dict[str, int]:
    """Writes the digit scans as out_dir/{train,val}/<digit>/<index>.png.

    The split is stratified and fixed by `seed`. The 8x8 scans (values 0-16) are
    scaled to 0-255 grayscale; the converter turns them into RGB.

    Returns:
      Image counts per split.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ValueError(
            "The demo needs scikit-learn for its bundled digit scans: "
            "pip install 'visiontrain[demo]'."
        ) from err
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    rng = np.random.default_rng(seed)
    counts = {"train": 0, "val": 0}
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(digits.target == digit))
        num_val = int(round(val_fraction * len(members)))
        for rank, index in enumerate(members):
            split = "val" if rank < num_val else "train"
            folder = os.path.join(out_dir, split, str(digit))
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(images[index], mode="L").save(os.path.join(folder, f"{index:04d}.png"))
            counts[split] += 1
    return counts
