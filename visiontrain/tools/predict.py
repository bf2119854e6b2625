"""visiontrain-predict: top-k labels for image files through an exported SavedModel.

    visiontrain-predict --saved_model=models/digits/1 a.png b.jpg [--json]
"""

from __future__ import annotations

import json

from absl import flags

from visiontrain.tools.common import run_main

flags.DEFINE_string("saved_model", None, "An exported version directory (EXPORT/NAME/N).")
flags.DEFINE_bool("json", False, "Print JSON instead of a table.")
flags.mark_flag_as_required("saved_model")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise ValueError("Name one or more image files after the flags.")
    from visiontrain.serving.predict import predict_files

    predictions = predict_files(FLAGS.saved_model, argv[1:])
    if FLAGS.json:
        print(json.dumps(predictions, indent=2))
        return
    width = max(len(p["file"]) for p in predictions)
    for p in predictions:
        ranked = "  ".join(f"{t['label']} {t['score']:.3f}" for t in p["top_k"])
        print(f"{p['file']:<{width}}  {ranked}")


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
