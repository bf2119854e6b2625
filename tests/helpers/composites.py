"""Test helper: a real multi-label image set, pairs of digit scans in one image."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def digit_scans() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digit scans as uint8 [N, 8, 8] and their digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.round(digits.images * (255.0 / 16.0)).astype(np.uint8), digits.target


def composite(scans: np.ndarray, first: int, second: int | None) -> np.ndarray:
    """A 16x16 image: scan `first` top left, `second` (if any) bottom right.

    Square, so the eval centre crop and the train crops keep both digits.
    """
    image = np.zeros((16, 16), np.uint8)
    image[:8, :8] = scans[first]
    if second is not None:
        image[8:, 8:] = scans[second]
    return image


HELD_OUT = 1500  # scans from this index on are never in a written set


def write_composite_label_file(root: str, count: int, classes: int, seed: int = 0) -> str:
    """`count` composites of digits 0..classes-1 and their labels.csv under `root`.

    Three in four show two different digits (labelled with both), one in four a single
    digit; no two composites are the same. Scans are drawn from those before HELD_OUT.
    """
    scans, digits = digit_scans()
    rng = np.random.default_rng(seed)
    pool = {d: np.flatnonzero((digits == d) & (np.arange(len(digits)) < HELD_OUT))
            for d in range(classes)}
    rows = ["path,labels"]
    os.makedirs(root, exist_ok=True)
    seen = set()
    for i in range(count):
        picks = None
        # Redraw repeats: a composite in both splits would leak validation into training.
        while picks is None or tuple(picks) in seen:
            pair = rng.choice(classes, 2, replace=False) if i % 4 else rng.choice(classes, 1)
            picks = [int(rng.choice(pool[int(d)])) for d in pair]
        seen.add(tuple(picks))
        image = composite(scans, picks[0], picks[1] if len(picks) > 1 else None)
        name = f"{i:05d}.png"
        Image.fromarray(image, mode="L").save(os.path.join(root, name))
        rows.append(f"{name},{'|'.join(str(int(d)) for d in pair)}")
    path = os.path.join(root, "labels.csv")
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return path


def held_out_png(first_digit: int, second_digit: int) -> bytes:
    """A PNG composite of the first held-out scans of the two digits."""
    import io

    scans, digits = digit_scans()
    first, second = (int(np.flatnonzero((digits == d) & (np.arange(len(digits)) >= HELD_OUT))[0])
                     for d in (first_digit, second_digit))
    buffer = io.BytesIO()
    Image.fromarray(composite(scans, first, second), mode="L").save(buffer, "PNG")
    return buffer.getvalue()
