"""TrainConfig: optimisation, schedule, checkpointing and logging of one training run.

Flat on purpose: its sections (the --help headings) are declared per field, so consumers
read `config.base_lr` and config.json keeps the shape older run directories have.
"""

from __future__ import annotations

import dataclasses

from visiontrain.config.paths import absolute_paths
from visiontrain.config.schema import (
    CADENCE,
    EXECUTION,
    LENGTH,
    ORDER,
    PATHS,
    RECIPE,
    Section,
)

RUN = Section("run", "The run: where it lives, how long, how it is seeded")
OPTIMIZER = Section("optimizer", "How each step updates the weights")
SCHEDULE = Section("schedule", "The learning rate over the steps")
LOSS = Section("loss", "What each step minimises")
AUGMENT = Section("augment", "On-device augmentation of the training images")
TRANSFER = Section("transfer", "Fine-tuning a pretrained backbone")
CHECKPOINTS = Section("checkpoints", "Evaluation, checkpoints and stopping")
EXECUTION_SECTION = Section("execution", "How the steps run, and what they report")

OPTIMIZERS = ("sgd", "adamw", "rmsprop", "lamb", "lion")
SCHEDULES = ("cosine", "step", "constant")
# "softmax" cross-entropy or per-class sigmoid "bce" (see training/losses.py); "auto"
# picks softmax for single-label data, bce for multi-label.
LOSSES = ("auto", "softmax", "bce")
DTYPES = ("float32", "mixed_float16", "mixed_bfloat16")
# Which checkpoints --average_checkpoints averages: the newest, or the best by accuracy.
AVERAGE_SOURCES = ("last", "best")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, schedule, checkpointing and logging of one training run."""

    run_dir: str = RUN(help="Run directory (checkpoints, logs, records).", resume=PATHS,
                       path=True)
    epochs: int = RUN(10, help="Training epochs.", resume=LENGTH, min=1)
    optimizer: str = OPTIMIZER("sgd", help="Optimizer.", resume=RECIPE, choices=OPTIMIZERS)
    # The optimizer steps once per this many micro-batches of global_batch_size images
    # (timm's --grad-accum-steps): a step trains on grad_accum_steps * global_batch_size.
    grad_accum_steps: int = OPTIMIZER(1, help="Step the optimizer once per K micro-batches of "
                                      "--global_batch_size (a step trains on K * "
                                      "global_batch_size images; LR scaling, schedule, EMA and "
                                      "checkpoints count these steps).", resume=ORDER, min=1)
    base_lr: float = OPTIMIZER(0.1, help="Learning rate per 256 images.", resume=RECIPE,
                               min=0.0)
    # Goyal et al.: LR = base_lr * global_batch / 256.
    scale_lr: bool = OPTIMIZER(True, help="Scale base_lr by global_batch_size / 256.",
                               resume=RECIPE)
    momentum: float = OPTIMIZER(0.9, help="SGD momentum.", resume=RECIPE, min=0.0, max=1.0)
    nesterov: bool = OPTIMIZER(False, help="Nesterov momentum.", resume=RECIPE)
    weight_decay: float = OPTIMIZER(5e-5, help="Decoupled decay (kernels only).",
                                    resume=RECIPE, min=0.0)
    warmup_epochs: float = SCHEDULE(0.0, help="Linear warmup length.", resume=RECIPE, min=0.0)
    schedule: str = SCHEDULE("cosine", help="Decay after warmup.", resume=RECIPE,
                             choices=SCHEDULES)
    step_decay_epochs: tuple[int, ...] = SCHEDULE((), help="Epochs at which step decay "
                                                  "multiplies LR.", resume=RECIPE)
    step_decay_rate: float = SCHEDULE(0.1, help="Step decay factor.", resume=RECIPE,
                                      min=0.0, max=1.0)
    label_smoothing: float = LOSS(0.0, help="Label smoothing.", resume=RECIPE,
                                  min=0.0, max=0.5)
    loss: str = LOSS("auto", help="softmax: cross-entropy over the classes; bce: per-class "
                     "sigmoid binary cross-entropy (ResNet strikes back); auto: softmax for "
                     "single-label data, bce for multi-label. Label smoothing and MixUp/CutMix "
                     "targets compose with each.", resume=RECIPE, choices=LOSSES)
    # '' (none), "balanced" (inverse class frequency) or a JSON file {label: weight}.
    class_weights: str = LOSS("", help="Weight each example's loss by its class: 'balanced' "
                              "(inverse training-class frequency, mean 1) or a JSON file "
                              "{label: weight}; '' off.", resume=RECIPE, path=True)
    clip_norm: float = OPTIMIZER(0.0, help="Global gradient norm clip (0: off).",
                                 resume=RECIPE, min=0.0)
    ema_decay: float = OPTIMIZER(0.0, help="Keep an EMA of the weights with this decay, e.g. "
                                 "0.9999 (0: off); evaluation reports raw and EMA weights.",
                                 resume=RECIPE, min=0.0, max=0.999999)
    eval_every: int = CHECKPOINTS(1, help="Evaluate every N epochs.", resume=CADENCE, min=1)
    # Stop when validation accuracy has not improved for this many epochs (0: never).
    early_stop_patience: int = CHECKPOINTS(0, help="Stop when validation accuracy has not "
                                           "improved for N epochs; the reason goes to the log "
                                           "and results.json (0: never).", resume=LENGTH,
                                           min=0)
    steps_per_loop: int = EXECUTION_SECTION(10, help="Steps per tf.function call.",
                                            resume=EXECUTION, min=1)
    checkpoint_every_steps: int = CHECKPOINTS(500, help="Periodic checkpoint interval (0: "
                                              "epochs only).", resume=CADENCE, min=0)
    keep_checkpoints: int = CHECKPOINTS(3, help="Checkpoints kept.", resume=CADENCE, min=1)
    # At the end, evaluate and save the mean of N checkpoints (0: off), the last N or
    # the best N by validation accuracy.
    average_checkpoints: int = CHECKPOINTS(0, help="At the end, evaluate the mean of N "
                                           "checkpoints against the best single one and save "
                                           "it as RUN/averaged.weights.h5 (visiontrain-export "
                                           "--weights=averaged); 0: off.", resume=CADENCE,
                                           min=0)
    average_of: str = CHECKPOINTS("last", help="Which checkpoints --average_checkpoints "
                                  "averages: the 'last' N (needs --keep_checkpoints >= N) or "
                                  "the 'best' N by validation accuracy.", resume=CADENCE,
                                  choices=AVERAGE_SOURCES)
    dtype: str = EXECUTION_SECTION("float32", help="Compute dtype policy.", resume=RECIPE,
                                   choices=DTYPES)
    jit_compile: bool = EXECUTION_SECTION(False, help="XLA-compile the step (slower on CPU).",
                                          resume=EXECUTION)
    deterministic: bool = RUN(False, help="Seeded, op-deterministic training.",
                              resume=EXECUTION)
    seed: int = RUN(0, help="Seed for data order, crops and initialisation.", resume=ORDER)
    augment: str = AUGMENT("", help="On-device augmentation policy, e.g. "
                           "'flip,randaugment:2:9,mixup:0.2' (every op and its arguments: "
                           "docs/training.md, 'Augmentation on the device'). Excludes "
                           "--augment_preset.", resume=RECIPE)
    max_nan_retries: int = CHECKPOINTS(2, help="On a NaN/inf loss, restore the last checkpoint "
                                       "and retry this many times before stopping.",
                                       resume=CADENCE, min=0)
    freeze_epochs: int = TRANSFER(0, help="First train the head only, backbone frozen "
                                  "(BatchNorm in inference mode), for this many epochs.",
                                  resume=RECIPE, min=0)
    unfreeze: str = TRANSFER("all", help="After --freeze_epochs fine-tune 'all' of the "
                             "backbone or its 'last:K' blocks (residual / inverted-residual / "
                             "separable blocks).", resume=RECIPE)
    fine_tune_lr: float = TRANSFER(0.0, help="Peak LR per 256 images after --freeze_epochs "
                                   "(0: base_lr / 10).", resume=RECIPE, min=0.0)
    freeze_bn: bool = TRANSFER(False, help="Keep the backbone's BatchNorm frozen while "
                               "fine-tuning.", resume=RECIPE)
    layer_decay: float = TRANSFER(0.0, help="Layer-wise LR decay: the backbone block d from "
                                  "the top gets LR * layer_decay**d (0: off).", resume=RECIPE,
                                  min=0.0, max=1.0)
    fine_tune_warmup_epochs: float = TRANSFER(0.0, help="Linear warmup of --fine_tune_lr.",
                                              resume=RECIPE, min=0.0)
    profile_steps: tuple[int, ...] = EXECUTION_SECTION((), help="Trace steps A..B with the TF "
                                                       "profiler into RUN_DIR/train "
                                                       "(TensorBoard's Profile tab), e.g. "
                                                       "10,20; empty: off.", resume=CADENCE)
    # Seconds between progress lines in the log (0: at every step boundary).
    progress_every_s: float = EXECUTION_SECTION(10.0, help="Log a progress line (step/total, "
                                                "epoch, loss, img/s, ETA) this often, in "
                                                "seconds of wall clock (0: at every step "
                                                "boundary).", resume=CADENCE, min=0.0)
    # Where this worker saves its final weights (.weights.h5): lets a multi-worker job
    # check that every worker ended with the same weights.
    final_weights: str = RUN("", help="Also save this worker's final weights here "
                             "(*.weights.h5); on a multi-worker job, compare workers' files to "
                             "check they agree.", resume=PATHS, path=True)

    def __post_init__(self):
        absolute_paths(self)
        steps = self.profile_steps
        if steps and (len(steps) != 2 or not 0 <= steps[0] < steps[1]):
            raise ValueError(
                f"--profile_steps={','.join(map(str, steps))}: expected two step numbers A,B "
                "with 0 <= A < B, e.g. 10,20."
            )
        _check_combinations(self)


def _check_combinations(config: TrainConfig) -> None:
    """Rejects settings that can only fail later, inside a compiled step or at the end."""
    if config.jit_compile and config.deterministic:
        raise ValueError(
            "--jit_compile and --deterministic cannot be combined: XLA has no deterministic "
            "implementation of some gradients (e.g. MaxPool); drop --jit_compile for "
            "reproducible runs, or pass --nodeterministic to compile with XLA."
        )
    if config.average_of == "last" and config.average_checkpoints > config.keep_checkpoints:
        raise ValueError(
            f"--average_checkpoints={config.average_checkpoints} averages the newest "
            f"checkpoints, but --keep_checkpoints={config.keep_checkpoints} keeps fewer; "
            f"pass --keep_checkpoints={config.average_checkpoints} or more.")
    if not 0 <= config.freeze_epochs <= config.epochs:
        raise ValueError(
            f"--freeze_epochs={config.freeze_epochs} must be in [0, --epochs="
            f"{config.epochs}]; freeze_epochs == epochs trains a linear head only."
        )
