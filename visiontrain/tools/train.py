"""visiontrain-train: trains (or resumes) a classifier on visiontrain shards.

    visiontrain-train --data_dir=DATA --run_dir=RUN --model=resnet50
        --global_batch_size=256 --epochs=90 --cpu_replicas=2

Rerunning into an existing --run_dir resumes it from its newest checkpoint.

Exit codes: 0 done; 2 a user error (bad flags or data, a refused resume, a run
directory in use, a damaged shard), one line on stderr; 42 stopped by SIGTERM after
a checkpoint; 130 stopped by Ctrl-C (after a checkpoint once the steps have begun).
"""

from __future__ import annotations

import json
import os
import sys

from absl import logging

from visiontrain.flags import configs, definitions
from visiontrain.tools.common import run_main

definitions.define_train_flags()


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
    from visiontrain.fileio import check_writable

    check_writable(train.run_dir, "--run_dir")
    # The strategy comes first: splitting the CPU must precede any TF op.
    from visiontrain.training import loop, preemption
    from visiontrain.training import strategy as strategy_lib

    strategy = strategy_lib.make_strategy(dist)
    try:
        # flags.txt is written with the other records, once every check has passed.
        results = loop.train(data, model, train, strategy, flagfile=configs.flagfile_text(),
                             distribution=dist)
    except KeyboardInterrupt:
        # Ctrl-C during start-up: the checkpointing handler takes it from the first step on.
        print("visiontrain-train: interrupted during start-up, before any step of this run; "
              "rerun the same command to start (or resume) it.", file=sys.stderr)
        sys.exit(preemption.EXIT_INTERRUPTED)
    logging.info("Done: %s", results)
    print(json.dumps(results, indent=2))


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
