"""Which settings a rerun into an existing run directory may change: the resume policy.

A run directory is bound to what gives its checkpoints meaning. A rerun that
changes the dataset, the network or its input, the data order, or the recipe of
the steps would resume weights trained one way under records that say another, so
it is refused before anything is written. Changes of length, cadence and
execution keep the meaning; they are allowed and logged.

Each setting's resume group is declared with it (config/schema.py), and a rerun is
compared with the run through config.json alone, field by field: flags.txt is a replay
aid, never read here. docs/flags.md lists every flag with its group.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from visiontrain.config import RUN_CONFIGS, schema

# Bound values that no single setting holds: (record key, what it is, the flags behind it).
DERIVED = (
    ("labels", "the label map", "--data_dir"),
    ("class_weights", "the per-class loss weights", "--class_weights/--data_dir"),
    ("input_pipelines", "the number of input pipelines (one per worker)",
     "--strategy/--worker_hosts"),
)


@dataclasses.dataclass(frozen=True)
class Change:
    name: str  # "--flag", "section.field" for a library-only setting, or a derived value's flags
    old: Any
    new: Any
    what: str = ""

    def __str__(self) -> str:
        what = f" ({self.what})" if self.what else ""
        return f"{self.name}{what}: {_short(self.old)} -> {_short(self.new)}"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def group_of(cls: type, field: dataclasses.Field) -> schema.ResumeGroup | None:
    """The resume group of a run config's field; a filled field has its flag's group."""
    setting = schema.setting_of(field)
    if setting is not None:
        return setting.resume
    flag = schema.flag_of(field)
    return next((schema.setting_of(f).resume for other in RUN_CONFIGS.values()
                 for f in dataclasses.fields(other)
                 if schema.declares_flag(f) and schema.flag_of(f) == flag), None)


def shown(value: Any) -> str:
    """A setting's value as its flag is written: true/false, 1,2 for lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def compare(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[Change], list[Change]]:
    """(refused, allowed) changes between two config.json records, by resume group.

    A field missing from a section holds its default: the run was made before the field
    existed, with the behaviour its default keeps. A section missing on either side (the
    library records no "distribution") is not compared. A field without a group is
    refused: undecided is not safe. One flag filling two fields (--seed) is one change.
    """
    changes: dict[str, tuple[Change, bool]] = {}
    for section, cls in RUN_CONFIGS.items():
        if section not in old or section not in new:
            continue
        for field in dataclasses.fields(cls):
            before, after = _value(old[section], field), _value(new[section], field)
            if before != after:
                flag = schema.flag_of(field)
                change = Change(f"--{flag}" if flag else f"{section}.{field.name}",
                                shown(before), shown(after))
                group = group_of(cls, field)
                changes[str(change)] = (change, group is not None and group.allowed)
    refused, allowed = [], []
    for _, (change, ok) in sorted(changes.items(), key=lambda item: item[1][0].name):
        (allowed if ok else refused).append(change)
    return refused, allowed


def _value(section: dict[str, Any], field: dataclasses.Field) -> Any:
    default = None if field.default is dataclasses.MISSING else field.default
    value = section.get(field.name, default)
    return list(value) if isinstance(value, tuple) else value


def compare_derived(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Changes of the bound values in `DERIVED` (keys missing on either side are skipped),
    and of the data itself (`_data_change`)."""
    return _data_change(old, new) + [
        Change(flags, old[key], new[key], what) for key, what, flags in DERIVED
        if key in old and key in new and old[key] != new[key]]


def _data_change(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """The data, compared by content and said in words: rebuilt byte-identical shards
    resume, wherever and whenever they were built. A run recorded before the content
    digest is compared by its manifest's sha256, as it was bound then."""
    if "dataset" in old and "dataset" in new:
        if old["dataset"]["sha256"] == new["dataset"]["sha256"]:
            return []
        was, now = old["dataset"]["described"], new["dataset"]["described"]
        what = "the data" + ("; the same counts, other images or labels" if was == now else "")
        return [Change("--data_dir", was, now, what)]
    key = "dataset_manifest_sha256"
    if old.get(key, new.get(key)) != new.get(key):
        return [Change("--data_dir", old[key], new[key], "the dataset's manifest sha256")]
    return []


def refusal_message(run_dir: str, refused: list[Change], replay: str) -> str:
    """The one line of a refused rerun: each change, and the two ways forward.

    `replay` says where the old values are, e.g. "--flagfile=RUN/flags.txt".
    """
    return (
        f"--run_dir={run_dir} holds a run made with other settings, and resuming it would mix "
        f"two runs in its checkpoints: {'; '.join(map(str, refused))}. Pass a new --run_dir "
        f"to start a separate run, or rerun with the old values ({replay})."
    )
