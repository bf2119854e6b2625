"""Where the converter's images come from: a class-per-folder tree, or TFDS.

A source is a label list and a flat list of items; each item knows its class, the
split it came with (if any) and how to get its bytes. Splitting an unsplit source
is stratified and seeded, so it is the same on every machine.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

SPLITS = ("train", "validation")
_VALIDATION_DIRS = ("validation", "val")


@dataclasses.dataclass(frozen=True)
class SourceItem:
    """One source image: `relpath` is what the manifest and the example record."""

    relpath: str
    label: int
    split: str | None = None
    path: str | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        """The raw file bytes."""
        if self.data is not None:
            return self.data
        with open(self.path, "rb") as f:
            return f.read()


@dataclasses.dataclass(frozen=True)
class Source:
    """Class names (index = label) and every item found, in a stable order."""

    labels: tuple[str, ...]
    items: tuple[SourceItem, ...]
    # Files found where no class can be inferred, as (relpath, reason).
    stray: tuple[tuple[str, str], ...] = ()


def _visible(names: list[str]) -> list[str]:
    # Hidden files (.DS_Store, editor swap files) are not data and are not counted.
    return sorted(n for n in names if not n.startswith("."))


def _class_dirs(root: str) -> list[str]:
    return [n for n in _visible(os.listdir(root)) if os.path.isdir(os.path.join(root, n))]


def _files_under(directory: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        dirnames[:] = _visible(dirnames)
        found += [os.path.join(dirpath, n) for n in _visible(filenames)]
    return sorted(found)


def _scan_tree(root: str, base: str, split: str | None, labels: list[str]) -> list[SourceItem]:
    items = []
    for label, name in enumerate(labels):
        class_dir = os.path.join(root, name)
        if not os.path.isdir(class_dir):
            continue
        files = _files_under(class_dir)
        if not files:
            raise ValueError(
                f"class directory {class_dir} is empty; add images or remove the directory"
            )
        items += [
            SourceItem(os.path.relpath(p, base), label, split, path=p) for p in files
        ]
    return items


def _stray_files(root: str, base: str) -> list[tuple[str, str]]:
    paths = [os.path.join(root, n) for n in _visible(os.listdir(root))]
    return [(os.path.relpath(p, base), "not inside a class directory")
            for p in paths if os.path.isfile(p)]


def scan_folder(root: str) -> Source:
    """Scans `root/CLASS/...` or `root/{train,val|validation}/CLASS/...`.

    Labels are the sorted class directory names (across both splits when the tree
    is already split). Files are found recursively and in sorted order.

    Raises:
      ValueError: `root` is not a directory, a class directory is empty, or there
        are fewer than 2 classes.
    """
    if not os.path.isdir(root):
        raise ValueError(f"--source={root} is not a directory")
    subdirs = _class_dirs(root)
    val_dir = next((d for d in _VALIDATION_DIRS if d in subdirs), None)
    if "train" in subdirs and val_dir:
        trees = {"train": os.path.join(root, "train"), "validation": os.path.join(root, val_dir)}
        labels = sorted(set(_class_dirs(trees["train"])) | set(_class_dirs(trees["validation"])))
        stray = _stray_files(trees["train"], root) + _stray_files(trees["validation"], root)
    else:
        trees = {None: root}
        labels = subdirs
        stray = _stray_files(root, root)
    if len(labels) < 2:
        raise ValueError(
            f"--source={root} has {len(labels)} class directories ({labels}); a classifier "
            "needs at least 2: put each class's images in its own sub-directory"
        )
    items = []
    for split, tree in trees.items():
        items += _scan_tree(tree, root, split, labels)
    return Source(tuple(labels), tuple(items), tuple(stray))


def stratified_split(
    items: list[SourceItem], val_fraction: float, seed: int
) -> list[SourceItem]:
    """Assigns a split to every item without one: per class, a seeded val_fraction.

    Each class with at least 2 items gives at least 1 to validation and keeps at
    least 1 for training, so both splits see every class.
    """
    by_label: dict[int, list[SourceItem]] = {}
    for item in items:
        if item.split is None:
            by_label.setdefault(item.label, []).append(item)
    chosen = set()
    for label, members in sorted(by_label.items()):
        members = sorted(members, key=lambda i: i.relpath)
        count = round(len(members) * val_fraction)
        if len(members) >= 2 and val_fraction > 0:
            count = min(max(count, 1), len(members) - 1)
        order = np.random.default_rng([seed, label]).permutation(len(members))
        chosen.update(members[i].relpath for i in order[:count])
    return [
        item
        if item.split is not None
        else dataclasses.replace(
            item, split="validation" if item.relpath in chosen else "train"
        )
        for item in items
    ]
