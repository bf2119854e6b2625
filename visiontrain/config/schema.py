"""How a setting is declared: one dataclass field holds its default, its help, its
bounds or choices, its section (its --help heading) and its resume group.

    OPTIMIZER = Section("optimizer", "How each step updates the weights")

    @dataclasses.dataclass(frozen=True)
    class TrainConfig:
        base_lr: float = OPTIMIZER(0.1, help="Learning rate per 256 images.",
                                   resume=RECIPE, min=0.0)

The absl flags (visiontrain/flags/generate.py), docs/flags.md (flags/reference.py) and
the resume policy (training/resume_policy.py) are read from these declarations, so a new
setting is one field plus the code that uses it. Light on purpose (no absl, no
TensorFlow): the data and export tools read it before TensorFlow is imported.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ResumeGroup:
    """What a rerun into an existing run directory may do with a setting, and why."""

    name: str
    allowed: bool
    why: str

    @property
    def policy(self) -> str:
        return "allowed" if self.allowed else "refused"


# A change to a refused setting would resume weights trained one way under records that
# say another; an allowed one keeps what the checkpoints mean. In docs/flags.md order.
NETWORK = ResumeGroup("network", False, "the checkpoints hold this network's weights, "
                      "trained and exported at this input size and initialisation")
ORDER = ResumeGroup("order", False, "the data position of a resumed run is derived from them")
RECIPE = ResumeGroup("recipe", False, "how every step trains: config.json must describe all "
                     "the steps in the checkpoints (--ema_decay and --dtype also change what a "
                     "checkpoint holds)")
PATHS = ResumeGroup("paths", True, "where things are: the dataset is bound by its manifest "
                    "sha256 and label map, not by its path")
LENGTH = ResumeGroup("length", True, "the same recipe, run longer or shorter; the "
                     "learning-rate schedule follows the new length from the current step on "
                     "(early stopping only ends the run sooner)")
CADENCE = ResumeGroup("cadence", True, "when to evaluate, save and log, and how validation "
                      "crops: not what the steps train")
EXECUTION = ResumeGroup("execution", True, "where and how fast the same steps run (the "
                        "number of input pipelines is bound separately)")
RESUME_GROUPS = (NETWORK, ORDER, RECIPE, PATHS, LENGTH, CADENCE, EXECUTION)


@dataclasses.dataclass(frozen=True)
class Setting:
    """A field's declaration beside its type and default (see `Section.__call__`)."""

    help: str
    section: Section
    resume: ResumeGroup | None = None
    choices: tuple[Any, ...] = ()
    # Inclusive (min, max) and exclusive (above, below) bounds of a number.
    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None
    # The flag's name when it is not the field's; None: a library-only setting.
    flag: str | None = ""
    # Names a file or directory: stored absolute (see paths.absolute_paths).
    path: bool = False

    def __post_init__(self):
        if not self.help.strip():
            raise ValueError(f"A setting in section {self.section.name!r} has no help; say "
                             "what it does, with its unit and what 0 or '' means.")
        if self.resume is not None and self.resume not in RESUME_GROUPS:
            raise ValueError(f"resume={self.resume!r}: use one of the RESUME_GROUPS.")

    def bounds(self) -> str:
        """The allowed interval, e.g. 'in [1, 100]', '>= 0', 'in (0, 1)'; '' when unbounded."""
        return interval(self.min, self.max, self.above, self.below)

    def within(self, value: float) -> bool:
        """Whether `value` lies within the bounds."""
        return ((self.min is None or value >= self.min)
                and (self.max is None or value <= self.max)
                and (self.above is None or value > self.above)
                and (self.below is None or value < self.below))


def interval(min: float | None = None, max: float | None = None, above: float | None = None,
             below: float | None = None) -> str:
    """Inclusive (min, max) and exclusive (above, below) bounds as text, e.g. 'in [1, 100]',
    '>= 0', 'in (0, 1]'; '' when there are none."""
    low = (f"[{_number(min)}" if min is not None else
           f"({_number(above)}" if above is not None else None)
    high = (f"{_number(max)}]" if max is not None else
            f"{_number(below)})" if below is not None else None)
    if low and high:
        return f"in {low}, {high}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {low[1:]}"
    if high:
        return f"{'<=' if high[-1] == ']' else '<'} {high[:-1]}"
    return ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclasses.dataclass(frozen=True)
class Section:
    """A concern: the settings one --help heading shows (absl groups flags by module name)."""

    name: str
    title: str

    @property
    def module(self) -> str:
        """The module name the section's flags are registered under."""
        return f"visiontrain.{self.name}"

    def __call__(self, default: Any = dataclasses.MISSING, *, help: str,
                 resume: ResumeGroup | None = None, **details: Any) -> Any:
        """A dataclass field declaring a setting of this section.

        Args:
          default: the default; left out for a setting that must be given.
          help: what it does, for --help and docs/flags.md.
          resume: its resume group; None for settings no training run records.
          **details: the other `Setting` fields: choices, min, max, above, below, flag,
            path.

        Raises:
          ValueError: the default is not one of the choices or outside the bounds (a
            declaration that its own flag would refuse).
        """
        setting = Setting(help, self, resume, **details)
        if default is not dataclasses.MISSING:
            if setting.choices and default not in setting.choices:
                raise ValueError(f"Default {default!r} is not one of {setting.choices}.")
            if setting.bounds() and not setting.within(default):
                raise ValueError(f"Default {default!r} is not {setting.bounds()}.")
        return dataclasses.field(default=default, metadata={"setting": setting})


def filled_from(flag: str, default: Any) -> Any:
    """A field that the flag of another config's declaration fills too (--seed fills
    DataConfig.seed and TrainConfig.seed): one setting, so one help and one group."""
    return dataclasses.field(default=default, metadata={"filled_from": flag})


def setting_of(field: dataclasses.Field) -> Setting | None:
    """The field's declaration; None for a field filled from another's flag."""
    return field.metadata.get("setting")


def flag_of(field: dataclasses.Field) -> str | None:
    """The flag that fills `field`: its own, or the one it is filled from; None if none."""
    if "filled_from" in field.metadata:
        return field.metadata["filled_from"]
    setting = setting_of(field)
    if setting is None:
        raise ValueError(f"Config field {field.name!r} is undeclared; declare it with a "
                         "Section (config/schema.py) or filled_from.")
    return (setting.flag or field.name) if setting.flag is not None else None


def declares_flag(field: dataclasses.Field) -> bool:
    """Whether `field` is the declaration of a flag (not library-only, not filled)."""
    setting = setting_of(field)
    return setting is not None and setting.flag is not None


def is_path_field(field: dataclasses.Field) -> bool:
    setting = setting_of(field)
    return setting is not None and setting.path
