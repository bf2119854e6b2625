"""visiontrain-bench: side-by-side speed benchmarks that print ratios to a baseline.

    visiontrain-bench input [--images=DIR] [--num_images=2000] [--json]
    visiontrain-bench augment [--image_size=224 --batch=64] [--accuracy] [--json]

Every benchmark times its candidates in the same command, one after the other, and
reports ratios: absolute numbers on a shared machine are noise, ratios much less.
"""

from __future__ import annotations

import json

from absl import flags

from visiontrain.tools.common import run_main

flags.DEFINE_bool("json", False, "Print one JSON object with every figure.")
flags.DEFINE_integer("image_size", 224, "Image side for the benchmark.", lower_bound=16)
flags.DEFINE_integer("batch", 64, "Batch size for the benchmark.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed repeats (the median is reported).", lower_bound=1)
flags.DEFINE_string("images", None, "input: a class-per-folder JPEG tree (default: generated).")
flags.DEFINE_integer("num_images", 2000, "input: photo-like JPEGs to generate.", lower_bound=8)
flags.DEFINE_bool("accuracy", False, "augment: also train with and without augmentation.")
FLAGS = flags.FLAGS


def _input() -> dict:
    from visiontrain.pipelines.input_bench import bench_input

    return bench_input(
        images_dir=FLAGS.images, num_images=FLAGS.num_images, image_size=FLAGS.image_size,
        batch_size=FLAGS.batch, repeats=FLAGS.repeats, as_json=FLAGS.json,
    )


def _augment() -> dict:
    from visiontrain.pipelines.augment_bench import bench_augment

    return bench_augment(image_size=FLAGS.image_size, batch=FLAGS.batch, repeats=FLAGS.repeats,
                         accuracy=FLAGS.accuracy)


BENCHMARKS = {"augment": _augment, "input": _input}


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in BENCHMARKS:
        raise ValueError(f"Name one benchmark: {' | '.join(sorted(BENCHMARKS))}.")
    figures = BENCHMARKS[argv[1]]()
    if FLAGS.json and argv[1] != "input":  # bench_input prints its own JSON
        print(json.dumps(figures, indent=2, sort_keys=True))


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
