"""Flags of the jobs that take no typed config: evaluate, predict, bench and demo.

Their values are read from FLAGS by the tool that defines them; each is a choice
of that one job, not something a config or a run record carries. Each tool's flags are
registered under its own module name, the heading --help and docs/flags.md show.
"""

from __future__ import annotations

import os

from absl import flags


def define_evaluate_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    at = {"flag_values": fv, "module_name": "visiontrain.evaluate"}
    flags.DEFINE_string("run_dir", None, "A training run (its newest checkpoint is evaluated).",
                        **at)
    flags.DEFINE_string("saved_model", None, "An exported version directory instead of a run.",
                        **at)
    flags.DEFINE_string("data_dir", None, "Shards to evaluate on (default: the run's).",
                        **at)
    flags.DEFINE_string("split", "validation", "Split of the shards.", **at)
    flags.DEFINE_integer("batch_size", 64, "Evaluation batch size.", lower_bound=1,
                         **at)
    flags.DEFINE_string("output", None, "Write the JSON report here; the PNGs go beside it.",
                        **at)
    flags.DEFINE_string("logdir", None, "TensorBoard directory (default: RUN/validation).",
                        **at)
    flags.DEFINE_integer("mistakes", 16, "Most confident mistakes drawn in mistakes.png.",
                         lower_bound=0, **at)
    flags.DEFINE_float("target_precision", 0.0, "Multi-label runs: tune each label's "
                       "threshold on validation for this precision (the most recall reaching "
                       "it); 0: for maximum F1.", lower_bound=0.0, upper_bound=1.0,
                       **at)
    flags.DEFINE_integer("eval_image_size", 0, "With --run_dir: evaluate at this input side "
                         "instead of the training --image_size (0: the training size).",
                         lower_bound=0, **at)
    flags.DEFINE_float("eval_crop_fraction", 0.0, "With --run_dir: centre-crop fraction "
                       "(0: the run's --eval_crop_fraction).", lower_bound=0.0,
                       upper_bound=1.0, **at)
    flags.DEFINE_enum("eval_tta", "none", ["none", "flip"], "Test-time augmentation: 'flip' "
                      "averages the probabilities of each image and its mirror image.",
                      **at)
    flags.register_multi_flags_validator(
        ["saved_model", "eval_image_size", "eval_crop_fraction"],
        lambda f: not (f["saved_model"] and (f["eval_image_size"] or f["eval_crop_fraction"])),
        message="A SavedModel has its input size and crop baked in; re-export the run with "
        "visiontrain-export --eval_image_size/--eval_crop_fraction, or pass --run_dir.",
        flag_values=fv)
    flags.register_multi_flags_validator(
        ["run_dir", "saved_model"], lambda f: bool(f["run_dir"]) != bool(f["saved_model"]),
        message="Pass exactly one of --run_dir and --saved_model.", flag_values=fv)


def define_predict_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    at = {"flag_values": fv, "module_name": "visiontrain.predict"}
    flags.DEFINE_string("saved_model", None, "An exported version directory (EXPORT/NAME/N).",
                        **at)
    flags.DEFINE_bool("json", False, "Print JSON instead of a table.", **at)
    flags.mark_flag_as_required("saved_model", flag_values=fv)


def define_bench_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    at = {"flag_values": fv, "module_name": "visiontrain.bench"}
    flags.DEFINE_bool("json", False, "Print one JSON object with every figure.", **at)
    flags.DEFINE_integer("image_size", 224, "Image side for the benchmark.", lower_bound=16,
                         **at)
    flags.DEFINE_integer("batch", 64, "Batch size for the benchmark.", lower_bound=1,
                         **at)
    flags.DEFINE_integer("repeats", 3, "Timed rounds (medians are reported).", lower_bound=1,
                         **at)
    flags.DEFINE_string("images", None,
                        "input: a class-per-folder JPEG tree (default: generated).",
                        **at)
    flags.DEFINE_integer("num_images", 2000, "input: photo-like JPEGs to generate (train: "
                         "400 unless given).", lower_bound=8, **at)
    flags.DEFINE_list("parts", ["ops", "randaugment", "step", "input"],
                      "augment: which parts to run (per-op table, RandAugment peers, ResNet-50 "
                      "step overhead, input pipeline).", **at)
    flags.DEFINE_bool("accuracy", False, "augment: also train with and without augmentation.",
                      **at)
    flags.DEFINE_list("configs", [], "train: the configurations to run (default: all), e.g. "
                      "resnet20_ours,resnet20_fit,resnet20_ours_2replicas for R_fit and "
                      "R_replicas.", **at)
    flags.DEFINE_integer("calls", 10, "train: timed multi-step calls per small_cnn/ResNet-20 "
                         "run; serve: timed calls per batch size and round.", lower_bound=1,
                         **at)
    flags.DEFINE_string("saved_model", None, "serve: the exported version (EXPORT/NAME/N) "
                        "whose serving_default is timed.", **at)
    flags.DEFINE_string("model", "resnet20", "transfer: registry name of the network.",
                        **at)
    flags.DEFINE_integer("shots", 20, "transfer: training photos per class.", lower_bound=1,
                         **at)
    flags.DEFINE_integer("pretrain_epochs", 10, "transfer: epochs on the first five classes.",
                         lower_bound=1, **at)
    flags.DEFINE_integer("epochs", 12, "transfer: epochs of each few-shot run.", lower_bound=1,
                         **at)
    flags.DEFINE_bool("freeze_bn", True, "transfer: keep BatchNorm frozen while fine-tuning.",
                      **at)


def define_demo_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    at = {"flag_values": fv, "module_name": "visiontrain.demo"}
    flags.DEFINE_string("workdir", "demo_out", "Where every artifact of the demo goes.",
                        **at)
    flags.DEFINE_string("flagfile_train", os.path.join("configs", "digits_demo.cfg"),
                        "Training flagfile.", **at)
    flags.DEFINE_integer("seed", 0, "Seed of the held-out split.", **at)
    flags.DEFINE_float("val_fraction", 0.2, "Held-out fraction per class.", lower_bound=0.05,
                       upper_bound=0.5, **at)
