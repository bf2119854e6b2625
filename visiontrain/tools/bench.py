"""visiontrain-bench: side-by-side speed benchmarks that print ratios to a baseline.

    visiontrain-bench input [--images=DIR] [--num_images=2000] [--json]
    visiontrain-bench augment [--image_size=224 --batch=64] [--accuracy] [--json]
    visiontrain-bench train [--configs=A,B] [--calls=10] [--num_images=400] [--json]

Every benchmark times its candidates in the same command, one after the other, and
reports ratios: absolute numbers on a shared machine are noise, ratios much less.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from absl import flags

from visiontrain.tools.common import run_main

flags.DEFINE_bool("json", False, "Print one JSON object with every figure.")
flags.DEFINE_integer("image_size", 224, "Image side for the benchmark.", lower_bound=16)
flags.DEFINE_integer("batch", 64, "Batch size for the benchmark.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed rounds (medians are reported).", lower_bound=1)
flags.DEFINE_string("images", None, "input: a class-per-folder JPEG tree (default: generated).")
flags.DEFINE_integer("num_images", 2000, "input: photo-like JPEGs to generate.", lower_bound=8)
flags.DEFINE_bool("accuracy", False, "augment: also train with and without augmentation.")
flags.DEFINE_list("configs", [], "train: the configurations to run (default: all), e.g. "
                  "resnet20_ours,resnet20_fit,resnet20_ours_2replicas for R_fit and R_replicas.")
flags.DEFINE_integer("calls", 10, "train: timed multi-step calls per small_cnn/ResNet-20 run.",
                     lower_bound=1)
FLAGS = flags.FLAGS


def _print_lines(figures: dict) -> None:
    for key, value in sorted(figures.items()):
        print(f"{key}: {value}")


def _input() -> tuple[dict, Callable[[dict], None]]:
    from visiontrain.bench.input import bench_input, print_table

    return bench_input(
        images_dir=FLAGS.images, num_images=FLAGS.num_images, image_size=FLAGS.image_size,
        batch_size=FLAGS.batch, repeats=FLAGS.repeats,
    ), print_table


def _augment() -> tuple[dict, Callable[[dict], None]]:
    from visiontrain.bench.augment import bench_augment, print_table

    return bench_augment(image_size=FLAGS.image_size, batch=FLAGS.batch, repeats=FLAGS.repeats,
                         accuracy=FLAGS.accuracy), print_table


def _train() -> tuple[dict, Callable[[dict], None]]:
    from visiontrain.bench.train import bench_train

    return bench_train(num_images=FLAGS.num_images if FLAGS["num_images"].present else 400,
                       rounds=FLAGS.repeats, cnn_calls=FLAGS.calls,
                       **({"configs": tuple(FLAGS.configs)} if FLAGS.configs else {})), _print_lines


BENCHMARKS = {"augment": _augment, "input": _input, "train": _train}


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in BENCHMARKS:
        raise ValueError(f"Name one benchmark: {' | '.join(sorted(BENCHMARKS))}.")
    figures, print_table = BENCHMARKS[argv[1]]()
    if FLAGS.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
    else:
        print_table(figures)


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
