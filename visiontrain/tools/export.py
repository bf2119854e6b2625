"""visiontrain-export: a training run becomes EXPORT/NAME/<version>/, a SavedModel.

    visiontrain-export --run_dir=RUN --export_dir=models/digits
"""

from __future__ import annotations

from visiontrain.flags import configs
from visiontrain.flags.export import define_export_flags
from visiontrain.tools.common import run_main

define_export_flags()


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    from visiontrain.serving.export import export_run
    from visiontrain.training.rundir import load_run

    config = configs.export_config()
    path = export_run(config, *load_run(config.run_dir, config.weights, config.eval_image_size,
                                               config.eval_crop_fraction))
    print(f"Exported SavedModel: {path}")


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
