"""visiontrain-train: trains (or resumes) a classifier on visiontrain shards.

    visiontrain-train --data_dir=DATA --run_dir=RUN --model=resnet50
        --global_batch_size=256 --epochs=90 --cpu_replicas=2

Rerunning into an existing --run_dir resumes it from its newest checkpoint.
"""

from __future__ import annotations

import json
import os

from absl import logging

from visiontrain.flags import configs, definitions
from visiontrain.tools.common import run_main

definitions.define_data_flags()
definitions.define_model_flags()
definitions.define_training_flags()
definitions.define_distribution_flags()


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    data, model, train, dist = (
        configs.data_config(), configs.model_config(), configs.train_config(),
        configs.distribution_config(),
    )
    if not data.data_dir.startswith("tfds:") and not os.path.isdir(data.data_dir):
        raise NotADirectoryError(
            f"--data_dir={data.data_dir} is not a directory; create shards with "
            "`visiontrain-data build --source=IMAGES --output=DIR`, or read a prepared "
            "TFDS dataset with --data_dir=tfds:NAME[/CONFIG]."
        )
    # The strategy comes first: splitting the CPU must precede any TF op.
    from visiontrain.training import loop, rundir
    from visiontrain.training import strategy as strategy_lib

    strategy = strategy_lib.make_strategy(dist)
    os.makedirs(train.run_dir, exist_ok=True)
    if strategy_lib.is_chief(strategy):
        with open(os.path.join(train.run_dir, rundir.FLAGS), "w") as f:
            f.write(configs.flagfile_text())
    results = loop.train(data, model, train, strategy)
    logging.info("Done: %s", results)
    print(json.dumps(results, indent=2))


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
