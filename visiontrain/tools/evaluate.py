"""visiontrain-evaluate: metrics, per-class report and images of a run or a SavedModel.

    visiontrain-evaluate --run_dir=RUN [--split=validation] [--data_dir=DATA]
        [--eval_image_size=S --eval_crop_fraction=F --eval_tta=flip]
    visiontrain-evaluate --saved_model=EXPORT/NAME/1 --data_dir=DATA --output=report.json

Prints the per-class precision/recall/F1/support table, writes confusion_matrix.png
and mistakes.png beside --output (or into --logdir), and logs both pictures as
TensorBoard images to --logdir (default: the run's validation/ directory).
"""

from __future__ import annotations

import os

from absl import flags

from visiontrain.config import absolute_path
from visiontrain.flags.jobs import define_evaluate_flags
from visiontrain.tools.common import run_main

define_evaluate_flags()
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    from visiontrain.evaluation import metrics, predictors
    from visiontrain.evaluation.report import draw_pictures, write_images
    from visiontrain.fileio import write_json_atomic
    from visiontrain.pipelines import datasets
    from visiontrain.pipelines import manifest as manifest_lib
    from visiontrain.serving import predict as serving_predict
    from visiontrain.training import rundir, summaries

    # The report records absolute paths: it means the same files read from anywhere.
    run_dir, saved_model, data_dir = (absolute_path(FLAGS[name].value or "")
                                      for name in ("run_dir", "saved_model", "data_dir"))
    if run_dir:
        model, labels, data, _ = rundir.load_run(run_dir, eval_image_size=FLAGS.eval_image_size,
                                                 eval_crop_fraction=FLAGS.eval_crop_fraction)
        predict, source = predictors.model_predictor(model, data), run_dir
        image_size = data.image_size
        data_dir = data_dir or data.data_dir
    else:
        if not data_dir:
            raise ValueError("--saved_model needs --data_dir, the shards to evaluate on.")
        predict, labels = serving_predict.saved_model_predictor(saved_model)
        source = saved_model
        image_size = serving_predict.saved_model_image_size(saved_model)
    if not os.path.isdir(data_dir):
        raise NotADirectoryError(f"--data_dir={data_dir} is not a directory.")
    predictors.check_labels(labels, manifest_lib.load_manifest(data_dir)["labels"], source)
    predict = predictors.with_tta(predict, FLAGS.eval_tta)
    records = datasets.encoded_records(data_dir, FLAGS.split, FLAGS.batch_size)
    probabilities, labels_, mistakes = predictors.collect(predict, records, FLAGS.mistakes)
    report = metrics.summarize(probabilities, labels_, labels)
    report.update(source=source, data_dir=data_dir, split=FLAGS.split, image_size=image_size,
                  tta=FLAGS.eval_tta)
    logdir = FLAGS.logdir or (os.path.join(run_dir, rundir.VALIDATION_LOGS)
                              if run_dir else None)
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


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
