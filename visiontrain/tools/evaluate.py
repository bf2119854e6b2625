"""visiontrain-evaluate: top-1, top-5 and loss of a run or an exported SavedModel.

    visiontrain-evaluate --run_dir=RUN [--split=validation] [--data_dir=DATA]
    visiontrain-evaluate --saved_model=EXPORT/NAME/1 --data_dir=DATA
"""

from __future__ import annotations

import json
import os

from absl import flags

from visiontrain.tools.common import run_main

flags.DEFINE_string("run_dir", None, "A training run (its newest checkpoint is evaluated).")
flags.DEFINE_string("saved_model", None, "An exported version directory instead of a run.")
flags.DEFINE_string("data_dir", None, "Shards to evaluate on (default: the run's).")
flags.DEFINE_string("split", "validation", "Split of the shards.")
flags.DEFINE_integer("batch_size", 64, "Evaluation batch size.", lower_bound=1)
flags.DEFINE_string("output", None, "Write the JSON report here as well.")
flags.register_multi_flags_validator(
    ["run_dir", "saved_model"],
    lambda f: bool(f["run_dir"]) != bool(f["saved_model"]),
    message="Pass exactly one of --run_dir and --saved_model.",
)
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    from visiontrain.pipelines import manifest as manifest_lib
    from visiontrain.evaluation import records as evaluate

    if FLAGS.run_dir:
        from visiontrain.serving.export import load_run

        model, labels, data, _ = load_run(FLAGS.run_dir)
        predict, source = evaluate.model_predictor(model, data), FLAGS.run_dir
        data_dir = FLAGS.data_dir or data.data_dir
    else:
        if not FLAGS.data_dir:
            raise ValueError("--saved_model needs --data_dir, the shards to evaluate on.")
        predict, labels = evaluate.saved_model_predictor(FLAGS.saved_model)
        source, data_dir = FLAGS.saved_model, FLAGS.data_dir
    if not os.path.isdir(data_dir):
        raise NotADirectoryError(f"--data_dir={data_dir} is not a directory.")
    evaluate.check_labels(labels, manifest_lib.load_manifest(data_dir)["labels"], source)
    records = evaluate.encoded_records(data_dir, FLAGS.split, FLAGS.batch_size)
    report = evaluate.summarize(*evaluate.collect(predict, records))
    report.update(source=source, data_dir=data_dir, split=FLAGS.split)
    text = json.dumps(report, indent=2)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            f.write(text + "\n")
    print(text)


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
