"""visiontrain-evaluate: metrics, per-class report and images of a run or a SavedModel.

    visiontrain-evaluate --run_dir=RUN [--split=validation] [--data_dir=DATA]
        [--eval_image_size=S --eval_crop_fraction=F --eval_tta=flip]
    visiontrain-evaluate --saved_model=EXPORT/NAME/1 --data_dir=DATA --output=report.json

Prints the per-class precision/recall/F1/support table and the calibration scores
(NLL, Brier, ECE over 15 equal-width confidence bins), writes confusion_matrix.png,
reliability.png and mistakes.png beside --output (or into --logdir), and logs the
pictures as TensorBoard images to --logdir (default: the run's validation/ directory).

Multi-label data (the manifest's task): a run's per-label thresholds are tuned on the
validation split (max F1, or --target_precision) and written to RUN/thresholds.json,
which export bakes in; a SavedModel is scored at the thresholds it carries. Prints
per-label precision/recall/F1/AP/support, micro/macro F1, mAP, exact match and the
label-cardinality error; draws per_label_ap.png; logs the scalars to TensorBoard.
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
    from visiontrain.evaluation import metrics, multilabel, multilabel_run, predictors
    from visiontrain.evaluation.report import draw_pictures, write_images
    from visiontrain.fileio import check_writable, write_json_atomic
    from visiontrain.pipelines import manifest as manifest_lib
    from visiontrain.pipelines import record_sources
    from visiontrain.serving import predict as serving_predict
    from visiontrain.training import rundir, summaries

    # The report records absolute paths: it means the same files read from anywhere.
    run_dir, saved_model, data_dir = (absolute_path(FLAGS[name].value or "")
                                      for name in ("run_dir", "saved_model", "data_dir"))
    if run_dir:
        run = rundir.load_run(run_dir, eval_image_size=FLAGS.eval_image_size,
                              eval_crop_fraction=FLAGS.eval_crop_fraction)
        labels, source, image_size = run.labels, run_dir, run.data.image_size
        data_dir = data_dir or run.data.data_dir
    else:
        if not data_dir:
            raise ValueError("--saved_model needs --data_dir, the shards to evaluate on.")
        predict, labels = serving_predict.saved_model_predictor(saved_model)
        source = saved_model
        image_size = serving_predict.saved_model_image_size(saved_model)
    if not os.path.isdir(data_dir):
        raise NotADirectoryError(f"--data_dir={data_dir} is not a directory.")
    manifest = manifest_lib.load_manifest(data_dir)
    multi = record_sources.is_multi_label(manifest)
    if run_dir:
        predict = predictors.model_predictor(run.model, run.data, multi_label=multi)
    predictors.check_labels(labels, manifest["labels"], source)
    predict = predictors.with_tta(predict, FLAGS.eval_tta)
    logdir = FLAGS.logdir or (os.path.join(run_dir, rundir.VALIDATION_LOGS)
                              if run_dir else None)
    image_dir = os.path.dirname(os.path.abspath(FLAGS.output)) if FLAGS.output else logdir
    # Checked before the predictions, which are the long part.
    for directory, flag in ((image_dir, "--output" if FLAGS.output else "--logdir"),
                            (logdir, "--logdir"), (run_dir if multi else "", "--run_dir")):
        if directory:
            check_writable(directory, flag)
    if multi:
        if run_dir:
            thresholds = multilabel_run.tuned_thresholds(
                predict, data_dir, manifest["labels"], FLAGS.target_precision, FLAGS.batch_size)
            write_json_atomic(os.path.join(run_dir, rundir.THRESHOLDS), thresholds)
        else:
            thresholds = serving_predict.saved_model_thresholds(saved_model)
        report, pictures = multilabel_run.evaluate(predict, data_dir, FLAGS.split,
                                                   manifest["labels"], thresholds,
                                                   FLAGS.batch_size)
        if logdir:
            multilabel_run.write_scalars(summaries.writer_for(logdir), FLAGS.split, report)
    else:
        records = record_sources.encoded_records(data_dir, FLAGS.split, FLAGS.batch_size)
        probabilities, labels_, mistakes = predictors.collect(
            predict, records, FLAGS.mistakes, manifest["splits"][FLAGS.split]["num_records"])
        report = metrics.summarize(probabilities, labels_, labels)
        metrics.add_train_frequency(report, manifest["splits"]["train"].get("class_counts", {}))
        pictures = draw_pictures(report, mistakes, image_size)
    report.update(source=source, data_dir=data_dir, split=FLAGS.split, image_size=image_size,
                  tta=FLAGS.eval_tta)
    if image_dir:
        report["images"] = write_images(pictures, image_dir)
    if logdir:
        # The same pictures as the PNGs, under the tags training uses for its own.
        for name, picture in pictures.items():
            summaries.write_image(logdir, f"{FLAGS.split}/{name}", picture, step=0)
    if FLAGS.output:
        write_json_atomic(FLAGS.output, report)
    print((multilabel if multi else metrics).format_report(report))
    wrote = [f"report {FLAGS.output}"] if FLAGS.output else []
    wrote += [f"pictures in {image_dir}"] if image_dir else []
    wrote += [f"TensorBoard images in {logdir}"] if logdir else []
    if wrote:
        print("Wrote " + "; ".join(wrote) + ".")


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
