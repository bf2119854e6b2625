"""Which flags a rerun into an existing run directory may change: the resume policy.

A run directory is bound to what gives its checkpoints meaning. A rerun that
changes the dataset, the network or its input, the data order, or the recipe of
the steps would resume weights trained one way under records that say another, so
it is refused before anything is written. Changes of length, cadence and
execution keep the meaning; they are allowed and logged.

`POLICY` is the one place that decides, for every `visiontrain-train` flag; the
README's table is `markdown_table()` (tests/training/test_resume_policy.py holds
them equal and checks that every flag of the tool has a row).
"""

from __future__ import annotations

import dataclasses
from typing import Any

REFUSED = "refused"
ALLOWED = "allowed"

# group -> (policy, why), in README order.
GROUPS: dict[str, tuple[str, str]] = {
    "network": (REFUSED, "the checkpoints hold this network's weights, trained and exported "
                         "at this input size and initialisation"),
    "order": (REFUSED, "the data position of a resumed run is derived from them"),
    "recipe": (REFUSED, "how every step trains: config.json must describe all the steps in the "
                        "checkpoints (--ema_decay and --dtype also change what a checkpoint "
                        "holds)"),
    "paths": (ALLOWED, "where things are: the dataset is bound by its manifest sha256 and "
                       "label map, not by its path"),
    "length": (ALLOWED, "the same recipe, run longer or shorter; the learning-rate schedule "
                        "follows the new length from the current step on (early stopping "
                        "only ends the run sooner)"),
    "cadence": (ALLOWED, "when to evaluate, save and log, and how validation crops: not what "
                         "the steps train"),
    "execution": (ALLOWED, "where and how fast the same steps run (the number of input "
                           "pipelines is bound separately)"),
}

# flag -> group. Every flag `visiontrain-train` defines has exactly one row.
POLICY: dict[str, str] = {
    **dict.fromkeys(("model", "image_size", "dropout", "drop_path", "zero_init_residual",
                     "sync_bn", "pretrained"), "network"),
    **dict.fromkeys(("global_batch_size", "grad_accum_steps", "seed", "shuffle_buffer",
                     "sampling", "aug_repeats"), "order"),
    **dict.fromkeys(("optimizer", "base_lr", "scale_lr", "momentum", "nesterov", "weight_decay",
                     "warmup_epochs", "schedule", "step_decay_epochs", "step_decay_rate",
                     "label_smoothing", "clip_norm", "ema_decay", "dtype", "augment",
                     "augment_preset", "crop_area_min", "crop_area_max", "aspect_ratio_min",
                     "aspect_ratio_max", "freeze_epochs", "unfreeze", "fine_tune_lr",
                     "fine_tune_warmup_epochs", "freeze_bn", "layer_decay"), "recipe"),
    **dict.fromkeys(("loss", "class_weights"), "recipe"),
    **dict.fromkeys(("run_dir", "data_dir", "tfds_data_dir", "final_weights"), "paths"),
    **dict.fromkeys(("epochs", "early_stop_patience"), "length"),
    **dict.fromkeys(("eval_every", "eval_crop_fraction", "checkpoint_every_steps",
                     "keep_checkpoints", "average_checkpoints", "average_of", "max_nan_retries",
                     "profile_steps", "progress_every_s"), "cadence"),
    **dict.fromkeys(("steps_per_loop", "prefetch_batches", "verify_sha256", "jit_compile",
                     "deterministic", "tf_data_service", "strategy", "cpu_replicas",
                     "worker_hosts", "task_index", "tpu", "collective_timeout_s"), "execution"),
}

# Bound values that no single flag holds: (record key, what it is, the flags behind it).
DERIVED = (
    ("dataset_manifest_sha256", "the dataset's manifest sha256", "--data_dir"),
    ("labels", "the label map", "--data_dir"),
    ("class_weights", "the per-class loss weights", "--class_weights/--data_dir"),
    ("input_pipelines", "the number of input pipelines (one per worker)",
     "--strategy/--worker_hosts"),
)


@dataclasses.dataclass(frozen=True)
class Change:
    name: str  # "--flag", or the flags behind a derived value
    old: Any
    new: Any
    what: str = ""

    def __str__(self) -> str:
        what = f" ({self.what})" if self.what else ""
        return f"{self.name}{what}: {_short(self.old)} -> {_short(self.new)}"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def policy_of(flag: str) -> str:
    """REFUSED or ALLOWED; a flag without a row is refused (undecided is not safe)."""
    return GROUPS[POLICY[flag]][0] if flag in POLICY else REFUSED


def parse_flagfile(text: str) -> dict[str, str]:
    """flags.txt as {flag: serialized value}; `--noNAME` and `--NAME` are booleans."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("--"):
            continue
        name, sep, value = line[2:].partition("=")
        if not sep:
            if name.startswith("no") and name[2:] in POLICY:
                name, value = name[2:], "false"
            else:
                value = "true"
        values[name] = value
    return values


def settings_from_config(config: dict[str, Any]) -> dict[str, str]:
    """config.json as {flag: value}, for runs made through the library (no flags.txt)."""
    values = {}
    for section in ("data", "model", "train"):
        for field, value in config.get(section, {}).items():
            flag = "model" if (section, field) == ("model", "name") else field
            if flag in POLICY:
                values[flag] = repr(list(value) if isinstance(value, tuple) else value)
    return values


UNSET = "(unset)"


def compare(old: dict[str, str], new: dict[str, str]) -> tuple[list[Change], list[Change]]:
    """(refused, allowed) changes between two flag settings.

    A flag missing on one side (flags.txt leaves out flags without a value, such as an
    unset --augment_preset) is UNSET there, which differs from any value.
    """
    refused, allowed = [], []
    for name in sorted(set(old) | set(new)):
        if old.get(name, UNSET) != new.get(name, UNSET):
            change = Change(f"--{name}", old.get(name, UNSET), new.get(name, UNSET))
            (refused if policy_of(name) == REFUSED else allowed).append(change)
    return refused, allowed


def compare_derived(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Changes of the bound values in `DERIVED` (keys missing on either side are skipped)."""
    return [Change(flags, old[key], new[key], what) for key, what, flags in DERIVED
            if key in old and key in new and old[key] != new[key]]


def refusal_message(run_dir: str, refused: list[Change], replay: str) -> str:
    """The one line of a refused rerun: each change, and the two ways forward.

    `replay` says where the old values are, e.g. "--flagfile=RUN/flags.txt".
    """
    return (
        f"--run_dir={run_dir} holds a run made with other settings, and resuming it would mix "
        f"two runs in its checkpoints: {'; '.join(map(str, refused))}. Pass a new --run_dir "
        f"to start a separate run, or rerun with the old values ({replay})."
    )


def markdown_table() -> str:
    """The README's table of `POLICY`, one row per group."""
    rows = ["| Changing on a rerun into the same `--run_dir` | is | because |",
            "|---|---|---|"]
    for group, (policy, why) in GROUPS.items():
        names = ", ".join(f"`--{flag}`" for flag, g in POLICY.items() if g == group)
        rows.append(f"| {names} | {policy} | {why} |")
    return "\n".join(rows) + "\n"
