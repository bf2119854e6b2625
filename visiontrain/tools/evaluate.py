"""visiontrain-evaluate: metrics, per-class report and images of a run or a SavedModel.

    visiontrain-evaluate --run_dir=RUN [--split=validation] [--data_dir=DATA]
    visiontrain-evaluate --saved_model=EXPORT/NAME/1 --data_dir=DATA --output=report.json

Prints the per-class precision/recall/F1/support table, writes confusion_matrix.png
and mistakes.png beside --output (or into --logdir), and logs both pictures as
TensorBoard images to --logdir (default: the run's validation/ directory).
"""

from __future__ import annotations

import os

import numpy as np
from absl import flags

from visiontrain.tools.common import run_main

flags.DEFINE_string("run_dir", None, "A training run (its newest checkpoint is evaluated).")
flags.DEFINE_string("saved_model", None, "An exported version directory instead of a run.")
flags.DEFINE_string("data_dir", None, "Shards to evaluate on (default: the run's).")
flags.DEFINE_string("split", "validation", "Split of the shards.")
flags.DEFINE_integer("batch_size", 64, "Evaluation batch size.", lower_bound=1)
flags.DEFINE_string("output", None, "Write the JSON report here; the PNGs go beside it.")
flags.DEFINE_string("logdir", None, "TensorBoard directory (default: RUN/validation).")
flags.DEFINE_integer("mistakes", 16, "Most confident mistakes drawn in mistakes.png.",
                     lower_bound=0)
flags.register_multi_flags_validator(
    ["run_dir", "saved_model"],
    lambda f: bool(f["run_dir"]) != bool(f["saved_model"]),
    message="Pass exactly one of --run_dir and --saved_model.",
)
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    from visiontrain.evaluation import metrics, predictors
    from visiontrain.fileio import write_json_atomic
    from visiontrain.pipelines import datasets
    from visiontrain.pipelines import manifest as manifest_lib
    from visiontrain.serving import predict as serving_predict
    from visiontrain.training import rundir, summaries

    if FLAGS.run_dir:
        model, labels, data, _ = rundir.load_run(FLAGS.run_dir)
        predict, source = predictors.model_predictor(model, data), FLAGS.run_dir
        image_size = data.image_size
        data_dir = FLAGS.data_dir or data.data_dir
    else:
        if not FLAGS.data_dir:
            raise ValueError("--saved_model needs --data_dir, the shards to evaluate on.")
        predict, labels = serving_predict.saved_model_predictor(FLAGS.saved_model)
        source, data_dir = FLAGS.saved_model, FLAGS.data_dir
        image_size = serving_predict.saved_model_image_size(FLAGS.saved_model)
    if not os.path.isdir(data_dir):
        raise NotADirectoryError(f"--data_dir={data_dir} is not a directory.")
    predictors.check_labels(labels, manifest_lib.load_manifest(data_dir)["labels"], source)
    records = datasets.encoded_records(data_dir, FLAGS.split, FLAGS.batch_size)
    probabilities, labels_, mistakes = predictors.collect(predict, records, FLAGS.mistakes)
    report = metrics.summarize(probabilities, labels_, labels)
    report.update(source=source, data_dir=data_dir, split=FLAGS.split)
    logdir = FLAGS.logdir or (os.path.join(FLAGS.run_dir, rundir.VALIDATION_LOGS)
                              if FLAGS.run_dir else None)
    image_dir = os.path.dirname(os.path.abspath(FLAGS.output)) if FLAGS.output else logdir
    pictures = draw_pictures(report, mistakes, image_size)
    if image_dir:
        report["images"] = write_images(pictures, image_dir)
    if logdir:
        # The same pictures as the PNGs, under the tags training uses for its own.
        for name, picture in pictures.items():
            summaries.write_image(logdir, f"{FLAGS.split}/{name}", picture, step=0)
    if FLAGS.output:
        write_json_atomic(FLAGS.output, report)
    print(metrics.format_report(report))


def draw_pictures(report, mistakes, image_size: int) -> dict[str, np.ndarray]:
    """The confusion matrix and (if there are any) the mistakes, as uint8 RGB pictures."""
    from visiontrain.evaluation import render
    from visiontrain.pipelines.preprocess import preprocess_for_eval

    names = [row["class"] for row in report["per_class"]]
    pictures = {"confusion_matrix": render.labelled_confusion_image(
        np.array(report["confusion_matrix"]), names)}
    if mistakes:
        images = np.stack([preprocess_for_eval(m[1], image_size, 1.0).numpy() for m in mistakes])
        pictures["mistakes"] = render.mistakes_grid(
            images, np.array([m[0] for m in mistakes]), [names[m[2]] for m in mistakes],
            [names[m[3]] for m in mistakes])
    return pictures


def write_images(pictures: dict[str, np.ndarray], directory: str) -> dict[str, str]:
    """Each picture as NAME.png in `directory`; returns their paths by name."""
    import tensorflow as tf

    from visiontrain.fileio import write_bytes_atomic

    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, f"{name}.png") for name in pictures}
    for name, picture in pictures.items():
        write_bytes_atomic(paths[name], tf.io.encode_png(picture).numpy())
    return paths


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
