"""A label file as a converter source: the CSV or JSONL export of a labelling tool.

    path,label,split                 {"path": "a/1.jpg", "label": "cat", "split": "train"}
    a/1.jpg,cat,train                {"path": "a/2.jpg", "labels": ["dog"]}
    a/2.jpg,dog,

CSV needs a header naming `path` and `label` (or `labels`, several joined by
LABEL_SEPARATOR); `split` is optional. JSONL rows carry `label` (a string) or `labels`
(a list). Paths are relative to the label file. A split of train, val or validation
is kept; test is held out (not converted); an empty split is left to the converter's
stratified split.

A row that cannot be used becomes a skipped entry named by its line number, so the
manifest accounts for every row and `--strict` can refuse the build: no path, a
missing file, an empty label, an unknown split, a second row for a file already
listed (a repeat, or a conflict when the labels differ: then no row of that file is
used, since which one is right cannot be told). A label named twice in one row
counts once.

Multi-label: when any usable row names several labels, the file is a multi-label
dataset and every item carries its set of labels (a row with one label is a set of
one); the manifest records the task. Otherwise it is single-label, as before.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Iterator

from visiontrain.pipelines.sources import Source, SourceItem

SUFFIXES = (".csv", ".jsonl")
LABEL_SEPARATOR = "|"
# What other tools join several labels with; in a single label these mean a mistake.
_OTHER_SEPARATORS = (LABEL_SEPARATOR, ";", ",")
_SPLITS = {"train": "train", "val": "validation", "validation": "validation", "test": None,
           "": ""}


@dataclasses.dataclass(frozen=True)
class _Row:
    line: int
    path: str
    labels: tuple[str, ...]
    split: str


def _label_set(names) -> tuple[str, ...]:
    """A row's labels, stripped, without blanks or repeats, sorted."""
    return tuple(sorted({name.strip() for name in names if name.strip()}))


def is_label_file(source: str) -> bool:
    """True when `--source` names a label file rather than a folder or TFDS."""
    return source.lower().endswith(SUFFIXES) and not os.path.isdir(source)


def _csv_rows(path: str) -> Iterator[_Row]:
    # utf-8-sig: Excel's "CSV UTF-8" starts the file with a byte-order mark.
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        label_column = "labels" if "labels" in columns else "label"
        if "path" not in columns or label_column not in columns:
            raise ValueError(
                f"--source={path} has columns {sorted(columns)}; a label file's header needs "
                "`path` and `label` (or `labels`), and may add `split`"
            )
        for row in reader:
            text = (row.get(label_column) or "").strip()
            labels = text.split(LABEL_SEPARATOR) if label_column == "labels" else [text]
            yield _Row(reader.line_num, (row.get("path") or "").strip(),
                       _label_set(labels),
                       (row.get("split") or "").strip())


def _jsonl_rows(path: str) -> Iterator[_Row]:
    with open(path, encoding="utf-8-sig") as f:  # Windows tools write a byte-order mark.
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
                labels = row["labels"] if "labels" in row else [row.get("label") or ""]
                if isinstance(labels, str) or not isinstance(labels, list):
                    raise TypeError("labels must be a list")
                yield _Row(line, str(row.get("path") or "").strip(),
                           _label_set(str(s) for s in labels),
                           str(row.get("split") or "").strip())
            except (ValueError, TypeError, AttributeError) as err:
                raise ValueError(
                    f"--source={path} line {line} is not a JSON object with `path` and "
                    f"`label` or `labels` (a list): {err}"
                ) from None


def _problem(row: _Row, base: str) -> str:
    """Why `row` cannot be used, or ''."""
    if not row.path:
        return "no path"
    if not row.labels:
        return "empty label"
    if row.split.lower() not in _SPLITS:
        return f"unknown split {row.split!r}: use train, val, validation, test or leave it empty"
    if not os.path.isfile(os.path.join(base, row.path)):
        return f"no such file {os.path.join(base, row.path)}"
    return ""


def scan_label_file(path: str) -> Source:
    """Reads a CSV or JSONL label file into a converter source.

    Labels are the sorted label names used by the file's usable rows.

    Raises:
      ValueError: the file cannot be read as a label file, or names fewer than 2 labels.
    """
    if not os.path.isfile(path):
        raise ValueError(f"--source={path} is not a file")
    base = os.path.dirname(os.path.abspath(path))
    rows = list((_jsonl_rows if path.lower().endswith(".jsonl") else _csv_rows)(path))
    name = os.path.basename(path)
    stray: list[tuple[str, str]] = []
    first: dict[str, _Row] = {}
    conflicted: set[str] = set()
    for row in rows:
        problem = _problem(row, base)
        if problem:
            stray.append((f"{name}:{row.line}", f"line {row.line}: {problem}"))
            continue
        real = os.path.realpath(os.path.join(base, row.path))
        earlier = first.setdefault(real, row)
        if earlier is row:
            continue
        if earlier.labels == row.labels:
            stray.append((f"{name}:{row.line}", f"line {row.line}: repeats line {earlier.line}"))
        else:
            stray.append((f"{name}:{row.line}", f"line {row.line}: {row.path} is labelled "
                          f"{_names(row.labels)} here and {_names(earlier.labels)} on line "
                          f"{earlier.line}; no row of it is used"))
            conflicted.add(real)
    usable = [row for real, row in first.items() if real not in conflicted]
    for real in conflicted:
        row = first[real]
        stray.append((f"{name}:{row.line}", f"line {row.line}: {row.path} has conflicting "
                      "labels (see the later line)"))
    _check_separators(path, usable)
    labels = sorted({label for row in usable for label in row.labels})
    multi_label = any(len(row.labels) > 1 for row in usable)
    if len(labels) < 2:
        raise ValueError(
            f"--source={path} names {len(labels)} usable label(s) {labels}; a classifier needs "
            "at least 2 (the skipped rows, if any, are listed with --strict)"
        )
    index = {label: i for i, label in enumerate(labels)}
    items = []
    for row in sorted(usable, key=lambda r: os.path.normpath(r.path)):
        split = _SPLITS[row.split.lower()]
        if split is None:
            stray.append((os.path.normpath(row.path), f"line {row.line}: split test is held out"))
            continue
        ids = tuple(index[label] for label in row.labels)
        items.append(SourceItem(os.path.normpath(row.path), ids if multi_label else ids[0],
                                split or None, path=os.path.join(base, row.path)))
    kind = "multi-label file" if multi_label else "label file"
    return Source(tuple(labels), tuple(items), tuple(sorted(stray)), (),
                  f"{kind} ({len(rows)} rows)")


def _check_separators(path: str, rows: list[_Row]) -> None:
    """Refuses labels that are other labels joined by a separator the file does not use.

    "cat;dog" read as one label makes a class of every combination, silently. Only
    when most rows are joined and their parts are labels in their own right (or
    fewer than the combinations) is it refused: ImageNet's "tench, Tinca tinca" is
    one name, and its parts name nothing else.
    """
    names = [row.labels[0] for row in rows if len(row.labels) == 1]
    for separator in _OTHER_SEPARATORS:
        joined = {n for n in names if separator in n}
        if not names or sum(separator in n for n in names) <= len(names) / 2:
            continue
        parts = {p.strip() for n in joined for p in n.split(separator) if p.strip()}
        alone = {n for n in names if separator not in n}
        if len(parts & alone) * 2 >= len(parts) or len(parts) < len(joined):
            example = min(joined)
            raise ValueError(
                f"--source={path}: {sum(separator in n for n in names)} of {len(names)} rows "
                f"join labels with {separator!r} (e.g. {example!r}), so each combination would "
                f"become one class. For a multi-label dataset, put them in a `labels` column "
                f"joined by {LABEL_SEPARATOR!r} (CSV) or a `labels` list (JSONL)."
            )


def _names(labels: tuple[str, ...]) -> str:
    return repr(labels[0]) if len(labels) == 1 else repr(list(labels))
