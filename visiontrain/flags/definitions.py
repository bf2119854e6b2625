"""absl flag definitions of the training job, grouped by concern.

Tools call the `define_*` functions they need, then `visiontrain.flags.configs`
turns the parsed flags into frozen configs once. Library code never reads FLAGS.
A flag that fills a config field takes its default from that field: the dataclasses
in `visiontrain.config` are the one source of every default. Enumerations are
DEFINE_enum so absl itself rejects an unknown value and lists the allowed ones;
numeric bounds name the flag and the bound.
"""

from __future__ import annotations

from absl import flags

from visiontrain.augment.policy import PRESETS as AUGMENT_PRESETS
from visiontrain.config import (
    AVERAGE_SOURCES,
    DataConfig,
    DistributionConfig,
    ModelConfig,
    TrainConfig,
    parse_address,
)
from visiontrain.flags.defaults import Definer
from visiontrain.models.registry import available_models
from visiontrain.pipelines.balanced import SAMPLINGS
from visiontrain.training.losses import LOSSES
from visiontrain.training.optim import OPTIMIZERS
from visiontrain.training.schedules import SCHEDULES
from visiontrain.training.strategy import STRATEGIES

DTYPES = ("float32", "mixed_float16", "mixed_bfloat16")


def define_data_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Where the shards are, and how batches are cut from them."""
    define = Definer(DataConfig, fv, __name__)
    define("string", "data_dir", "Directory written by `visiontrain-data build`, or "
           "tfds:NAME[/CONFIG] for a prepared TFDS dataset.")
    define("integer", "image_size", "Side of the square model input.", lower_bound=8)
    define("integer", "global_batch_size", "Batch over all replicas.", lower_bound=1)
    define("float", "crop_area_min", "Random-resized-crop min area.",
           lower_bound=0.01, upper_bound=1.0)
    define("float", "crop_area_max", "Random-resized-crop max area.",
           lower_bound=0.01, upper_bound=1.0)
    define("float", "aspect_ratio_min", "Random crop min aspect ratio.",
           lower_bound=0.1, upper_bound=10.0)
    define("float", "aspect_ratio_max", "Random crop max aspect ratio.",
           lower_bound=0.1, upper_bound=10.0)
    define("float", "eval_crop_fraction", "Centre crop fraction for eval and serving.",
           lower_bound=0.05, upper_bound=1.0)
    define("integer", "shuffle_buffer", "Record shuffle buffer.", lower_bound=1)
    define("enum", "sampling", "none: every training record once per epoch; balanced: a "
           "seeded class-balanced draw (each class equally often, rare records repeat, "
           "common ones are subsampled), same epoch length.", enum_values=SAMPLINGS)
    define("integer", "aug_repeats", "Repeated augmentation (DeiT): an epoch keeps its "
           "length but reads 1/N as many distinct images, each N times with its own crop and "
           "augmentation (1: off).", lower_bound=1)
    define("integer", "prefetch_batches", "Bounded prefetch (autotune has caused OOMs).",
           lower_bound=1)
    define("bool", "verify_sha256", "Hash every shard in the pre-flight check.")
    define("string", "tfds_data_dir",
           "TFDS data_dir when --data_dir=tfds:NAME[/CONFIG] (read directly).")
    define("string", "tf_data_service", "grpc://HOST:PORT of a tf.data service dispatcher: "
           "training images are decoded, cropped and batched on its workers. '' = in this "
           "process.")
    flags.mark_flag_as_required("data_dir", flag_values=fv)
    for low, high in (("crop_area_min", "crop_area_max"),
                      ("aspect_ratio_min", "aspect_ratio_max")):
        flags.register_multi_flags_validator(
            [low, high], lambda f, low=low, high=high: f[low] <= f[high],
            message=f"--{low} must not exceed --{high}.", flag_values=fv)

    def service_address(address: str) -> bool:
        if address:
            try:
                parse_address(address)
            except ValueError as error:
                raise flags.ValidationError(str(error)) from None
        return True

    flags.register_validator("tf_data_service", service_address, flag_values=fv)
    flags.register_multi_flags_validator(
        ["tf_data_service", "data_dir"],
        lambda f: not (f["tf_data_service"] and (f["data_dir"] or "").startswith("tfds:")),
        message="--tf_data_service serves our TFRecord shards only; for --data_dir=tfds:... "
        "convert it first (visiontrain-data build --source=tfds:...) or drop --tf_data_service.",
        flag_values=fv)


def define_model_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Which network to build."""
    define = Definer(ModelConfig, fv, __name__)
    define("string", "model", f"One of: {', '.join(available_models())} (MobileNet v1 also "
           "takes any width, e.g. mobilenet_v1_0.35).")
    define("float", "dropout", "Dropout before the classifier.",
           lower_bound=0.0, upper_bound=0.95)
    define("float", "drop_path", "Stochastic depth for our ResNets and keras-hub's Swin: the "
           "deepest block's residual branch is dropped at this rate, earlier blocks linearly "
           "less (0: off).",
           lower_bound=0.0, upper_bound=0.9)
    define("bool", "zero_init_residual", "Zero-init the last BN gamma of each block.")
    define("bool", "sync_bn", "Synchronise BatchNorm statistics across replicas.")
    define("string", "pretrained", "'' (random init), 'imagenet', hub:PRESET (keras-hub models: a "
           "preset name online, or a preset or timm checkpoint directory), a weights file (.h5 / "
           ".weights.h5: a whole model or a backbone), or a visiontrain run directory (its "
           "best.weights.h5).")
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
    define = Definer(TrainConfig, fv, __name__)
    define("string", "run_dir", "Run directory (checkpoints, logs, records).")
    define("integer", "epochs", "Training epochs.", lower_bound=1)
    define("enum", "optimizer", "Optimizer.", enum_values=OPTIMIZERS)
    define("integer", "grad_accum_steps", "Step the optimizer once per K micro-batches of "
           "--global_batch_size (a step trains on K * global_batch_size images; LR scaling, "
           "schedule, EMA and checkpoints count these steps).", lower_bound=1)
    define("float", "base_lr", "Learning rate per 256 images.", lower_bound=0.0)
    define("bool", "scale_lr", "Scale base_lr by global_batch_size / 256.")
    define("float", "momentum", "SGD momentum.", lower_bound=0.0, upper_bound=1.0)
    define("bool", "nesterov", "Nesterov momentum.")
    define("float", "weight_decay", "Decoupled decay (kernels only).", lower_bound=0.0)
    define("float", "warmup_epochs", "Linear warmup length.", lower_bound=0.0)
    define("enum", "schedule", "Decay after warmup.", enum_values=SCHEDULES)
    define("list", "step_decay_epochs", "Epochs at which step decay multiplies LR.")
    define("float", "step_decay_rate", "Step decay factor.", lower_bound=0.0, upper_bound=1.0)
    define("float", "label_smoothing", "Label smoothing.", lower_bound=0.0, upper_bound=0.5)
    define("enum", "loss", "softmax: cross-entropy over the classes; bce: per-class sigmoid "
           "binary cross-entropy (ResNet strikes back); auto: softmax for single-label data, "
           "bce for multi-label. Label smoothing and MixUp/CutMix targets compose with each.",
           enum_values=LOSSES)
    define("string", "class_weights", "Weight each example's loss by its class: 'balanced' "
           "(inverse training-class frequency, mean 1) or a JSON file {label: weight}; '' off.")
    define("float", "clip_norm", "Global gradient norm clip (0: off).", lower_bound=0.0)
    define("float", "ema_decay", "Keep an EMA of the weights with this decay, e.g. 0.9999 "
           "(0: off); evaluation reports raw and EMA weights.",
           lower_bound=0.0, upper_bound=0.999999)
    define("integer", "max_nan_retries", "On a NaN/inf loss, restore the last checkpoint "
           "and retry this many times before stopping.", lower_bound=0)
    define("integer", "eval_every", "Evaluate every N epochs.", lower_bound=1)
    define("integer", "early_stop_patience", "Stop when validation accuracy has not improved "
           "for N epochs; the reason goes to the log and results.json (0: never).",
           lower_bound=0)
    define("integer", "steps_per_loop", "Steps per tf.function call.", lower_bound=1)
    define("integer", "checkpoint_every_steps",
           "Periodic checkpoint interval (0: epochs only).", lower_bound=0)
    define("integer", "keep_checkpoints", "Checkpoints kept.", lower_bound=1)
    define("integer", "average_checkpoints", "At the end, evaluate the mean of N checkpoints "
           "against the best single one and save it as RUN/averaged.weights.h5 "
           "(visiontrain-export --weights=averaged); 0: off.", lower_bound=0)
    define("enum", "average_of", "Which checkpoints --average_checkpoints averages: the "
           "'last' N (needs --keep_checkpoints >= N) or the 'best' N by validation accuracy.",
           enum_values=AVERAGE_SOURCES)
    define("enum", "dtype", "Compute dtype policy.", enum_values=DTYPES)
    define("bool", "jit_compile", "XLA-compile the step (slower on CPU).")
    define("string", "augment", "On-device augmentation policy, e.g. "
           "'flip,randaugment:2:9,mixup:0.2' (ops: see "
           "visiontrain.augment.policy.describe_ops). Excludes --augment_preset.")
    # Not a config field: it resolves into TrainConfig.augment (see configs.train_config).
    flags.DEFINE_enum("augment_preset", None, list(AUGMENT_PRESETS),
                      "A named augmentation policy (none: off). Excludes --augment.",
                      flag_values=fv)
    define("bool", "deterministic", "Seeded, op-deterministic training.")
    define("integer", "seed", "Seed for data order, crops and initialisation.")
    define("string", "final_weights", "Also save this worker's final weights here "
           "(*.weights.h5); on a multi-worker job, compare workers' files to check they agree.")
    define("list", "profile_steps", "Trace steps A..B with the TF profiler into "
           "RUN_DIR/train (TensorBoard's Profile tab), e.g. 10,20; empty: off.")
    define("float", "progress_every_s", "Log a progress line (step/total, epoch, loss, img/s, "
           "ETA) this often, in seconds of wall clock (0: at every step boundary).",
           lower_bound=0.0)
    flags.mark_flag_as_required("run_dir", flag_values=fv)
    define("integer", "freeze_epochs", "Transfer: first train the head only, backbone "
           "frozen (BatchNorm in inference mode), for this many epochs.", lower_bound=0)
    define("string", "unfreeze", "Transfer: after --freeze_epochs fine-tune 'all' of the "
           "backbone or its 'last:K' blocks (residual / inverted-residual / separable blocks).")
    define("float", "fine_tune_lr", "Transfer: peak LR per 256 images after --freeze_epochs "
           "(0: base_lr / 10).", lower_bound=0.0)
    define("float", "fine_tune_warmup_epochs", "Transfer: linear warmup of --fine_tune_lr.",
           lower_bound=0.0)
    define("bool", "freeze_bn", "Transfer: keep the backbone's BatchNorm frozen while "
           "fine-tuning.")
    define("float", "layer_decay", "Layer-wise LR decay: the backbone block d from the top "
           "gets LR * layer_decay**d (0: off).", lower_bound=0.0, upper_bound=1.0)


def define_distribution_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """How replicas and workers are laid out."""
    define = Definer(DistributionConfig, fv, __name__)
    define("enum", "strategy", "tf.distribute strategy.", enum_values=STRATEGIES)
    define("integer", "cpu_replicas", "Split the CPU into N logical devices (N replicas).",
           lower_bound=1)
    define("list", "worker_hosts", "host:port of every worker (multi_worker).")
    define("integer", "task_index", "This worker's index in --worker_hosts.", lower_bound=0)
    define("string", "tpu", "TPU name or grpc:// address (strategy=tpu).")
    define("integer", "collective_timeout_s", "Fail a collective after this long.",
           lower_bound=1)
