"""visiontrain-export: a training run becomes EXPORT/NAME/<version>/, a SavedModel.

    visiontrain-export --run_dir=RUN --export_dir=models/digits

A multi-label run is exported with the per-label thresholds that visiontrain-evaluate
tuned and wrote to RUN/thresholds.json (see serving/signatures.py for the outputs).
"""

from __future__ import annotations

import json
import os

from visiontrain.flags import configs
from visiontrain.flags.export import define_export_flags
from visiontrain.tools.common import run_main

define_export_flags()


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    # Converted before TensorFlow is imported: a bad value is a prompt one-line error.
    config = configs.export_config()
    from visiontrain.fileio import check_writable
    from visiontrain.serving import calibrate
    from visiontrain.serving.export import REPORT, export_run
    from visiontrain.training.rundir import load_run, load_thresholds
    from visiontrain.training.runlock import RunLock

    check_writable(config.export_dir, "--export_dir")
    run = load_run(config.run_dir, config.weights, config.eval_image_size,
                   config.eval_crop_fraction)
    # One export at a time per directory: each removes the temporary folders it finds.
    with RunLock(config.export_dir, ".", flag="--export_dir", job="export"):
        path = export_run(config, run, load_thresholds(config.run_dir, run.data.data_dir))
    print(f"Exported SavedModel: {path}")
    with open(os.path.join(path, REPORT)) as f:
        report = json.load(f)
    for runtime in ("tflite", "onnx"):
        if runtime in report:
            r = report[runtime]
            print(f"{runtime}: {r['file']}  top-1 agreement "
                  f"{r['top1_agreement_with_saved_model']:.4f}  max abs diff "
                  f"{r['max_abs_probability_diff']:.2e} on {r['images']} images")
    learned = calibrate.format_record(report)
    if learned:
        print(learned)


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
