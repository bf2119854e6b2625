"""Where the converter's images come from: a class-per-folder tree, or TFDS.

A source is a label list and a flat list of items; each item knows its class, the
split it came with (if any) and how to get its bytes. Splitting an unsplit source
is stratified and seeded, so it is the same on every machine.
"""

from __future__ import annotations

import dataclasses
import os
import stat

import numpy as np

SPLITS = ("train", "validation")
# Top-level folder names that mean "a split", and the split each one feeds. "test"
# feeds validation only when there is no val/validation folder; otherwise it is kept
# out, so it stays a clean held-out set.
_SPLIT_DIRS = {"train": "train", "val": "validation", "validation": "validation",
               "test": "validation"}

_HIDDEN = "hidden file or folder (name starts with '.')"


@dataclasses.dataclass(frozen=True)
class SourceItem:
    """One source image: `relpath` is what the manifest and the example record."""

    relpath: str
    # The class index; a multi-label item's is the sorted tuple of its class indices.
    label: int | tuple[int, ...]
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
    # Files found but not usable as items, as (relpath, reason).
    stray: tuple[tuple[str, str], ...] = ()
    # Directory links not followed (loops, repeats, broken), as (relpath, reason).
    links: tuple[tuple[str, str], ...] = ()
    # How the tree was read, for the log: "class folders" or which split folders.
    layout: str = ""

    @property
    def multi_label(self) -> bool:
        return any(not isinstance(item.label, int) for item in self.items)


def label_ids(label: int | tuple[int, ...]) -> tuple[int, ...]:
    """An item's class indices, one for a single-label item."""
    return (label,) if isinstance(label, int) else tuple(label)


@dataclasses.dataclass
class _Walk:
    """The state of one scan: every real directory and file seen, by (device, inode)."""

    base: str
    seen: dict[tuple[int, int], str] = dataclasses.field(default_factory=dict)
    stray: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    links: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.base)

    def first_visit(self, path: str, st: os.stat_result) -> str | None:
        """None the first time a real file or directory is met, else where it was met."""
        key = (st.st_dev, st.st_ino)
        if key in self.seen:
            return self.seen[key]
        self.seen[key] = self.rel(path)
        return None


def _entries(directory: str) -> list[os.DirEntry]:
    with os.scandir(directory) as it:
        return sorted(it, key=lambda e: e.name)


def _visit(walk: _Walk, path: str, links: list[str] | None) -> list[str]:
    """The regular files at or under `path`; links are deferred to `links` unless None."""
    rel = walk.rel(path)
    if links is not None and os.path.islink(path):
        links.append(path)
        return []
    try:
        st = os.stat(path)
    except OSError:
        walk.stray.append((rel, "broken link: its target does not exist"))
        return []
    is_dir = stat.S_ISDIR(st.st_mode)
    earlier = walk.first_visit(path, st)
    if earlier is not None:
        loop = is_dir and (earlier == "." or rel.startswith(earlier + os.sep))
        reason = f"already scanned as {earlier}" + (" (a loop)" if loop else "")
        (walk.links if is_dir else walk.stray).append((rel, f"link not followed: {reason}"))
        return []
    if is_dir:
        return _walk_files(walk, path, links)
    if stat.S_ISREG(st.st_mode):
        return [path]
    walk.stray.append((rel, "not a regular file"))
    return []


def _walk_files(walk: _Walk, directory: str, links: list[str] | None) -> list[str]:
    """Every regular file under `directory`, nothing met twice (by device and inode)."""
    found = []
    for entry in _entries(directory):
        if entry.name.startswith("."):
            # Not data (.DS_Store, editor swap files), but counted so nothing vanishes.
            walk.stray.append((walk.rel(entry.path), _HIDDEN))
        else:
            found += _visit(walk, entry.path, links)
    return found


def _visible_dirs(root: str) -> list[str]:
    return [e.name for e in _entries(root) if not e.name.startswith(".") and e.is_dir()]


def _top_files(walk: _Walk, root: str) -> None:
    for entry in _entries(root):
        if entry.name.startswith("."):
            walk.stray.append((walk.rel(entry.path), _HIDDEN))
        elif not entry.is_dir():
            walk.stray.append((walk.rel(entry.path), "not inside a class directory"))


def split_layout(root: str) -> dict[str, str | None]:
    """Which top-level folders of `root` are splits: {folder: split, or None to skip}.

    Returns {} for a plain class-per-folder tree.

    Raises:
      ValueError: split-like folders next to other folders, or an ambiguous set.
    """
    subdirs = _visible_dirs(root)
    split_like = [d for d in subdirs if d.lower() in _SPLIT_DIRS]
    if not split_like:
        return {}
    others = [d for d in subdirs if d not in split_like]
    lowered = {d.lower(): d for d in split_like}
    validation = [d for d in split_like if d.lower() in ("val", "validation")]
    if others or "train" not in lowered or len(validation) > 1:
        raise ValueError(
            f"--source={root} has split folders {split_like} next to {others or 'nothing else'}"
            f"{'' if 'train' in lowered else ' and no train/'}; lay it out either as "
            "SOURCE/CLASS/image or as SOURCE/train/CLASS/image with one of "
            "SOURCE/{val,validation,test}/CLASS/image"
        )
    layout = {lowered["train"]: "train"}
    for d in split_like:
        if d.lower() == "test":
            layout[d] = None if validation else "validation"
    if validation:
        layout[validation[0]] = "validation"
    return layout


def _claim_class_dirs(walk: _Walk, trees: dict[str, str | None], labels: list[str]) -> None:
    # Every class folder is claimed before any is walked, so a link from inside one
    # class to another class folder is refused instead of relabelling its files.
    for tree in trees:
        for name in labels:
            class_dir = os.path.join(tree, name)
            if not os.path.isdir(class_dir):
                continue
            earlier = walk.first_visit(class_dir, os.stat(class_dir))
            if earlier is not None:
                raise ValueError(
                    f"class folders {earlier} and {walk.rel(class_dir)} are the same directory "
                    "(a link); keep one of them"
                )


def _scan_classes(walk: _Walk, trees: dict[str, str | None], labels: list[str]) -> list:
    # Two passes: the real tree first, then the links found in it. A file or folder
    # that is both somewhere real and behind a link thus keeps its real class.
    found = {}
    for tree, split in trees.items():
        for label, name in enumerate(labels):
            class_dir = os.path.join(tree, name)
            if os.path.isdir(class_dir):
                links: list[str] = []
                found[class_dir] = (split, label, _walk_files(walk, class_dir, links), links)
    items = []
    for class_dir, (split, label, files, links) in found.items():
        for link in links:
            files = files + _visit(walk, link, None)
        if not files:
            raise ValueError(
                f"class directory {class_dir} is empty; add images or remove the directory"
            )
        # The label is the class folder the file was found under, even through a link.
        items += [SourceItem(walk.rel(p), label, split, path=p) for p in sorted(files)]
    return items


def scan_folder(root: str) -> Source:
    """Scans `root/CLASS/...` or `root/train/CLASS/...` with `root/{val,validation,test}/...`.

    Labels are the sorted class directory names (across splits when the tree is
    already split). Files are found recursively, in sorted order, following links
    to directories but never meeting a real directory or file twice.

    Raises:
      ValueError: `root` is not a directory, a class directory is empty, the split
        folders are mixed with other folders, or there are fewer than 2 classes.
    """
    if not os.path.isdir(root):
        raise ValueError(f"--source={root} is not a directory")
    walk = _Walk(root)
    walk.first_visit(root, os.stat(root))
    _top_files(walk, root)
    layout = split_layout(root)
    trees = {os.path.join(root, d): s for d, s in layout.items()} or {root: None}
    for tree, split in list(trees.items()):
        if tree != root:
            walk.first_visit(tree, os.stat(tree))
            _top_files(walk, tree)
        if split is None and tree != root:
            walk.stray += [(walk.rel(f), "in a test/ folder kept out: validation comes from "
                            "val/ or validation/") for f in _walk_files(walk, tree, None)]
            del trees[tree]
    labels = sorted({name for tree in trees for name in _visible_dirs(tree)})
    if len(labels) < 2:
        raise ValueError(
            f"--source={root} has {len(labels)} class directories ({labels}); a classifier "
            "needs at least 2: put each class's images in its own sub-directory"
        )
    _claim_class_dirs(walk, trees, labels)
    items = _scan_classes(walk, trees, labels)
    described = ", ".join(f"{os.path.basename(t)}/ -> {s}" for t, s in trees.items() if s)
    return Source(tuple(labels), tuple(items), tuple(sorted(walk.stray)), tuple(walk.links),
                  f"split folders ({described})" if layout else "class folders")


def stratified_split(
    items: list[SourceItem], val_fraction: float, seed: int
) -> list[SourceItem]:
    """Assigns a split to every item without one: per class, a seeded val_fraction.

    Each class with at least 2 items gives at least 1 to validation and keeps at
    least 1 for training, so both splits see every class. Multi-label items are
    stratified by their set of labels.
    """
    by_label: dict[int | tuple[int, ...], list[SourceItem]] = {}
    for item in items:
        if item.split is None:
            by_label.setdefault(item.label, []).append(item)
    chosen = set()
    for label, members in sorted(by_label.items()):
        members = sorted(members, key=lambda i: i.relpath)
        count = round(len(members) * val_fraction)
        if len(members) >= 2 and val_fraction > 0:
            count = min(max(count, 1), len(members) - 1)
        order = np.random.default_rng([seed, *label_ids(label)]).permutation(len(members))
        chosen.update(members[i].relpath for i in order[:count])
    return [
        item
        if item.split is not None
        else dataclasses.replace(
            item, split="validation" if item.relpath in chosen else "train"
        )
        for item in items
    ]
