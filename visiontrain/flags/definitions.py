"""absl flags of `visiontrain-train`: the run's config declarations, and what only the
TensorFlow side knows.

Every flag that fills a config field is generated from its declaration
(flags/generate.py). Added here: the model registry (--model's names in its help, and its
validator) and --augment_preset, a named --augment policy that is no config field (it
resolves into TrainConfig.augment in configs.train_config). Tools call
`define_train_flags`, then `visiontrain.flags.configs` turns the parsed flags into frozen
configs once. Library code never reads FLAGS.
"""

from __future__ import annotations

from absl import flags

from visiontrain.augment.policy import PRESETS as AUGMENT_PRESETS
from visiontrain.config import DataConfig, DistributionConfig, ModelConfig, TrainConfig
from visiontrain.config.train_config import AUGMENT
from visiontrain.flags.generate import define_config_flags
from visiontrain.models.registry import available_models

# Flags that fill no config field of their own: the field each one resolves into.
RESOLVED_INTO = {"augment_preset": "augment"}


def define_train_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Every flag of `visiontrain-train`."""
    define_data_flags(fv)
    define_model_flags(fv)
    define_training_flags(fv)
    define_distribution_flags(fv)


def define_data_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Where the shards are, and how batches are cut from them."""
    define_config_flags(DataConfig, fv)


def define_model_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Which network to build."""
    define_config_flags(ModelConfig, fv,
                        notes={"model": f"One of: {', '.join(available_models())}."})
    flags.register_validator("model", check_model_name, flag_values=fv)


def check_model_name(name: str) -> bool:
    """The --model validator: True for a registered model.

    Raises:
      flags.ValidationError: naming the unknown model and listing the known ones.
    """
    if name in available_models():
        return True
    raise flags.ValidationError(
        f"Unknown --model={name!r}; known models: {', '.join(available_models())}."
    )


def define_training_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Optimisation, schedule, checkpoints and logging."""
    define_config_flags(TrainConfig, fv)
    flags.DEFINE_enum("augment_preset", None, list(AUGMENT_PRESETS),
                      "A named augmentation policy (none: off). Excludes --augment.",
                      flag_values=fv, module_name=AUGMENT.module)


def define_distribution_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """How replicas and workers are laid out."""
    define_config_flags(DistributionConfig, fv)
