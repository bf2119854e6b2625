"""visiontrain-bench: side-by-side speed benchmarks that print ratios to a baseline.

    visiontrain-bench input [--images=DIR] [--num_images=2000] [--json]
    visiontrain-bench augment [--image_size=224 --batch=64] [--parts=ops,randaugment,step,input]
                              [--accuracy] [--json]
    visiontrain-bench train [--configs=A,B] [--calls=10] [--num_images=400] [--json]
    visiontrain-bench transfer --images=TREE [--model=resnet20 --shots=20] [--json]
    visiontrain-bench serve --saved_model=EXPORT/NAME/N [--repeats=3 --calls=20] [--json]

Every benchmark times its candidates in the same command, one after the other, and
reports ratios: absolute numbers on a shared machine are noise, ratios much less.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from absl import flags

from visiontrain.flags.jobs import define_bench_flags
from visiontrain.tools.common import run_main

define_bench_flags()
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
                         accuracy=FLAGS.accuracy, parts=tuple(FLAGS.parts)), print_table


def _train() -> tuple[dict, Callable[[dict], None]]:
    from visiontrain.bench.train import bench_train

    return (bench_train(num_images=FLAGS.num_images if FLAGS["num_images"].present else 400,
                       rounds=FLAGS.repeats, cnn_calls=FLAGS.calls,
                       **({"configs": tuple(FLAGS.configs)} if FLAGS.configs else {})),
            _print_lines)


def _transfer() -> tuple[dict, Callable[[dict], None]]:
    from visiontrain.bench.transfer import bench_transfer

    if not FLAGS.images:
        raise ValueError("transfer needs --images=TREE, a {train,test}/<class>/ tree of 10 "
                         "classes (e.g. a CIFAR-10 JPEG subset).")
    return bench_transfer(FLAGS.images, model=FLAGS.model, shots=FLAGS.shots,
                          pretrain_epochs=FLAGS.pretrain_epochs, epochs=FLAGS.epochs,
                          freeze_bn=FLAGS.freeze_bn), _print_lines


def _serve() -> tuple[dict, Callable[[dict], None]]:
    from visiontrain.bench.serve import bench_serve, print_table, write_outputs

    if not FLAGS.saved_model:
        raise ValueError("serve needs --saved_model=EXPORT/NAME/N, an exported version.")
    result = bench_serve(FLAGS.saved_model, rounds=FLAGS.repeats, calls=FLAGS.calls)
    result["written"] = write_outputs(FLAGS.saved_model, result)
    return result, print_table


BENCHMARKS = {"augment": _augment, "input": _input, "serve": _serve, "train": _train,
              "transfer": _transfer}


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
