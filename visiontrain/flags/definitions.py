"""absl flag definitions, grouped by concern, with validators.

Tools call the `define_*` functions they need, then `visiontrain.flags.configs`
turns the parsed flags into frozen configs once. Library code never reads FLAGS.
Enumerations are DEFINE_enum so absl itself rejects an unknown value and lists
the allowed ones; numeric bounds name the flag and the bound.
"""

from __future__ import annotations

from absl import flags

from visiontrain.augment.policy import PRESETS as AUGMENT_PRESETS
from visiontrain.augment.policy import parse_policy
from visiontrain.pipelines.data_service import parse_address
from visiontrain.training.optim import OPTIMIZERS
from visiontrain.training.schedules import SCHEDULES
from visiontrain.training.strategy import STRATEGIES

DTYPES = ("float32", "mixed_float16", "mixed_bfloat16")


def define_data_flags() -> None:
    """Where the shards are, and how batches are cut from them."""
    flags.DEFINE_string("data_dir", None, "Directory written by `visiontrain-data build`.")
    flags.DEFINE_integer("image_size", 224, "Side of the square model input.", lower_bound=8)
    flags.DEFINE_integer("global_batch_size", 128, "Batch over all replicas.", lower_bound=1)
    flags.DEFINE_float("crop_area_min", 0.08, "Random-resized-crop min area.", 0.01, 1.0)
    flags.DEFINE_float("crop_area_max", 1.0, "Random-resized-crop max area.", 0.01, 1.0)
    flags.DEFINE_float("aspect_ratio_min", 3 / 4, "Random crop min aspect ratio.", 0.1, 10.0)
    flags.DEFINE_float("aspect_ratio_max", 4 / 3, "Random crop max aspect ratio.", 0.1, 10.0)
    flags.DEFINE_float(
        "eval_crop_fraction", 0.875, "Centre crop fraction for eval and serving.", 0.05, 1.0
    )
    flags.DEFINE_integer("shuffle_buffer", 2048, "Record shuffle buffer.", lower_bound=1)
    flags.DEFINE_integer(
        "prefetch_batches", 4, "Bounded prefetch (autotune has caused OOMs).", lower_bound=1
    )
    flags.DEFINE_bool("verify_sha256", False, "Hash every shard in the pre-flight check.")
    flags.DEFINE_string(
        "tfds_data_dir", "", "TFDS data_dir when --data_dir=tfds:NAME[/CONFIG] (read directly)."
    )
    flags.mark_flag_as_required("data_dir")
    flags.register_multi_flags_validator(
        ["crop_area_min", "crop_area_max"],
        lambda f: f["crop_area_min"] <= f["crop_area_max"],
        message="--crop_area_min must not exceed --crop_area_max.",
    )
    flags.register_multi_flags_validator(
        ["aspect_ratio_min", "aspect_ratio_max"],
        lambda f: f["aspect_ratio_min"] <= f["aspect_ratio_max"],
        message="--aspect_ratio_min must not exceed --aspect_ratio_max.",
    )
    flags.DEFINE_string(
        "tf_data_service", "", "grpc://HOST:PORT of a tf.data service dispatcher: training "
        "images are decoded, cropped and batched on its workers. '' = in this process."
    )

    def service_address(address: str) -> bool:
        if address:
            try:
                parse_address(address)
            except ValueError as error:
                raise flags.ValidationError(str(error)) from None
        return True

    flags.register_validator("tf_data_service", service_address)
    flags.register_multi_flags_validator(
        ["tf_data_service", "data_dir"],
        lambda f: not (f["tf_data_service"] and (f["data_dir"] or "").startswith("tfds:")),
        message="--tf_data_service serves our TFRecord shards only; for --data_dir=tfds:... "
        "convert it first (visiontrain-data build --source=tfds:...) or drop --tf_data_service.",
    )


def define_model_flags() -> None:
    """Which network to build."""
    flags.DEFINE_string("model", "resnet50", "Model name; see --helpfull for the list.")
    flags.DEFINE_float("dropout", 0.0, "Dropout before the classifier.", 0.0, 0.95)
    flags.DEFINE_bool("zero_init_residual", True, "Zero-init the last BN gamma of each block.")
    flags.DEFINE_bool("sync_bn", False, "Synchronise BatchNorm statistics across replicas.")
    flags.DEFINE_string(
        "pretrained", "", "'' (random init), 'imagenet', or a path to weights / a run dir."
    )
    flags.register_validator("model", check_model_name)


def check_model_name(name: str) -> bool:
    """The --model validator: True for a registered model.

    Raises:
      flags.ValidationError: naming the unknown model and listing the known ones.
    """
    from visiontrain.models.registry import available_models

    if name in available_models():
        return True
    raise flags.ValidationError(
        f"Unknown --model={name!r}; known models: {', '.join(available_models())}."
    )


def define_training_flags() -> None:
    """Optimisation, schedule, checkpoints and logging."""
    flags.DEFINE_string("run_dir", None, "Run directory (checkpoints, logs, records).")
    flags.DEFINE_integer("epochs", 10, "Training epochs.", lower_bound=1)
    flags.DEFINE_enum("optimizer", "sgd", OPTIMIZERS, "Optimizer.")
    flags.DEFINE_float("base_lr", 0.1, "Learning rate per 256 images.", lower_bound=0.0)
    flags.DEFINE_bool("scale_lr", True, "Scale base_lr by global_batch_size / 256.")
    flags.DEFINE_float("momentum", 0.9, "SGD momentum.", 0.0, 1.0)
    flags.DEFINE_bool("nesterov", False, "Nesterov momentum.")
    flags.DEFINE_float("weight_decay", 5e-5, "Decoupled decay (kernels only).", lower_bound=0.0)
    flags.DEFINE_float("warmup_epochs", 0.0, "Linear warmup length.", lower_bound=0.0)
    flags.DEFINE_enum("schedule", "cosine", SCHEDULES, "Decay after warmup.")
    flags.DEFINE_list("step_decay_epochs", [], "Epochs at which step decay multiplies LR.")
    flags.DEFINE_float("step_decay_rate", 0.1, "Step decay factor.", 0.0, 1.0)
    flags.DEFINE_float("label_smoothing", 0.0, "Label smoothing.", 0.0, 0.5)
    flags.DEFINE_float("clip_norm", 0.0, "Global gradient norm clip (0: off).", lower_bound=0.0)
    flags.DEFINE_float(
        "ema_decay", 0.0, "Keep an EMA of the weights with this decay, e.g. 0.9999 (0: off); "
        "evaluation reports raw and EMA weights.", 0.0, 0.999999,
    )
    flags.DEFINE_integer(
        "max_nan_retries", 2, "On a NaN/inf loss, restore the last checkpoint and retry this "
        "many times before stopping.", lower_bound=0,
    )
    flags.DEFINE_integer("eval_every", 1, "Evaluate every N epochs.", lower_bound=1)
    flags.DEFINE_integer("steps_per_loop", 10, "Steps per tf.function call.", lower_bound=1)
    flags.DEFINE_integer(
        "checkpoint_every_steps", 500, "Periodic checkpoint interval (0: epochs only).",
        lower_bound=0,
    )
    flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.", lower_bound=1)
    flags.DEFINE_enum("dtype", "float32", DTYPES, "Compute dtype policy.")
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the step (slower on CPU).")
    flags.DEFINE_string(
        "augment", "", "On-device augmentation policy, e.g. 'flip,randaugment:2:9,mixup:0.2' "
        "(ops: see visiontrain.augment.policy.describe_ops). Excludes --augment_preset.",
    )
    flags.DEFINE_enum(
        "augment_preset", None, list(AUGMENT_PRESETS),
        "A named augmentation policy (none: off). Excludes --augment.",
    )
    flags.DEFINE_bool("deterministic", False, "Seeded, op-deterministic training.")
    flags.DEFINE_integer("seed", 0, "Seed for data order, crops and initialisation.")
    flags.DEFINE_string(
        "final_weights", "", "Also save this worker's final weights here (*.weights.h5); "
        "on a multi-worker job, compare workers' files to check they agree.",
    )
    flags.DEFINE_list(
        "profile_steps", [], "Trace steps A..B with the TF profiler into RUN_DIR/train "
        "(TensorBoard's Profile tab), e.g. 10,20; empty: off.",
    )
    flags.mark_flag_as_required("run_dir")
    flags.DEFINE_integer(
        "freeze_epochs", 0, "Transfer: first train the head only, backbone frozen (BatchNorm "
        "in inference mode), for this many epochs.", lower_bound=0)
    flags.DEFINE_string(
        "unfreeze", "all", "Transfer: after --freeze_epochs fine-tune 'all' of the backbone "
        "or its 'last:K' blocks (residual / inverted-residual / separable blocks).")
    flags.DEFINE_float(
        "fine_tune_lr", 0.0, "Transfer: peak LR per 256 images after --freeze_epochs "
        "(0: base_lr / 10).", lower_bound=0.0)
    flags.DEFINE_float(
        "fine_tune_warmup_epochs", 0.0, "Transfer: linear warmup of --fine_tune_lr.",
        lower_bound=0.0)
    flags.DEFINE_bool(
        "freeze_bn", False, "Transfer: keep the backbone's BatchNorm frozen while fine-tuning.")
    flags.DEFINE_float(
        "layer_decay", 0.0, "Layer-wise LR decay: the backbone block d from the top gets "
        "LR * layer_decay**d (0: off).", 0.0, 1.0)
    flags.register_validator("profile_steps", _valid_profile_steps)


def _valid_profile_steps(value: list[str]) -> bool:
    from visiontrain.training.summaries import parse_profile_steps

    if value:
        try:
            parse_profile_steps(",".join(value))
        except ValueError as err:
            raise flags.ValidationError(str(err)) from None
    return True


def resolve_augment(spec: str, preset: str | None) -> str:
    """The one policy string of --augment / --augment_preset, validated.

    The two flags are mutually exclusive, so a run's recorded config names exactly the
    ops it ran; a preset resolves to its spec string.

    Raises:
      ValueError: both flags given, or the spec does not parse (the parser's message).
    """
    if spec and preset is not None:
        raise ValueError(
            f"--augment={spec!r} and --augment_preset={preset} are mutually exclusive; "
            "pass one (a preset is a named --augment spec)."
        )
    resolved = AUGMENT_PRESETS[preset] if preset is not None else spec
    try:
        parse_policy(resolved)
    except ValueError as err:
        raise ValueError(f"--augment={resolved!r}: {err}") from None
    return resolved


def define_distribution_flags() -> None:
    """How replicas and workers are laid out."""
    flags.DEFINE_enum("strategy", "auto", STRATEGIES, "tf.distribute strategy.")
    flags.DEFINE_integer(
        "cpu_replicas", 1, "Split the CPU into N logical devices (N replicas).", lower_bound=1
    )
    flags.DEFINE_list("worker_hosts", [], "host:port of every worker (multi_worker).")
    flags.DEFINE_integer("task_index", 0, "This worker's index in --worker_hosts.", lower_bound=0)
    flags.DEFINE_string("tpu", "", "TPU name or grpc:// address (strategy=tpu).")
    flags.DEFINE_integer(
        "collective_timeout_s", 60, "Fail a collective after this long.", lower_bound=1
    )


def define_export_flags() -> None:
    """Where a run becomes a versioned SavedModel."""
    flags.DEFINE_string("run_dir", None, "The training run to export.")
    flags.DEFINE_string("export_dir", None, "EXPORT/NAME; versions go below it.")
    flags.DEFINE_string("version", "auto", "Version number, or 'auto' for the next one.")
    flags.DEFINE_integer("top_k", 5, "k of the top_k outputs.", lower_bound=1)
    flags.DEFINE_integer(
        "max_pixels", 50_000_000, "Requests whose image headers declare more pixels are "
        "rejected (INVALID_ARGUMENT) before decoding.", lower_bound=1,
    )
    flags.DEFINE_enum(
        "tflite", "", ["", "float32", "float16", "int8"],
        "Also write assets.extra/model_<mode>.tflite (uint8 [1,S,S,3] preprocessed input); "
        "int8 is calibrated on training images.",
    )
    flags.mark_flags_as_required(["run_dir", "export_dir"])
    flags.register_validator(
        "version",
        lambda v: v == "auto" or (v.isdigit() and int(v) > 0),
        message="--version must be a positive integer or 'auto'.",
    )
