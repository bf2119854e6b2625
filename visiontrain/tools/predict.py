"""visiontrain-predict: top-k labels for image files through an exported SavedModel.

    visiontrain-predict --saved_model=models/digits/1 a.png b.jpg photos/ [--json]

Every readable file is answered; each one that is not is named on stderr, and the
exit code is then 2.
"""

from __future__ import annotations

import json
import sys

from absl import flags

from visiontrain.flags.jobs import define_predict_flags
from visiontrain.tools.common import EXIT_USER_ERROR, run_main

define_predict_flags()
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        raise ValueError("Name one or more image files or directories after the flags.")
    from visiontrain.serving.predict import predict_files

    predictions, failures = predict_files(FLAGS.saved_model, argv[1:])
    if FLAGS.json:
        print(json.dumps(predictions, indent=2))
    elif predictions:
        width = max(len(p["file"]) for p in predictions)
        for p in predictions:
            ranked = "  ".join(f"{t['label']} {t['score']:.3f}" for t in p["top_k"])
            above = f"labels [{', '.join(p['labels'])}]  " if "labels" in p else ""
            print(f"{p['file']:<{width}}  {above}{ranked}")
    for failure in failures:
        print(f"visiontrain-predict: error: {failure['file']}: {failure['error']}",
              file=sys.stderr)
    if not predictions and not failures:
        raise ValueError(f"no image files in {' '.join(argv[1:])} (directories are searched)")
    return EXIT_USER_ERROR if failures else 0


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
