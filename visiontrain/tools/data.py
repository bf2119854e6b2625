"""visiontrain-data: build, verify and inspect TFRecord shards.

  visiontrain-data build --source=DIR|LABELS.csv|LABELS.jsonl|tfds:NAME[/CONFIG] \
      --output=OUT [--strict] ...
  visiontrain-data verify OUT      # every shard vs the manifest, every image decoded
  visiontrain-data inspect OUT     # per-class counts and OUT/inspect_grid.png

Subcommands: build, verify, inspect.
"""

from __future__ import annotations

import os
import sys

from absl import flags, logging

from visiontrain.errors import UserError
from visiontrain.flags.convert import define_data_tool_flags
from visiontrain.tools.common import EXIT_INTERRUPTED, run_main

define_data_tool_flags()
FLAGS = flags.FLAGS


def _build() -> None:
    # TensorFlow is imported only once the flags have parsed: a flag error stays one line.
    from visiontrain import fileio
    from visiontrain.evaluation.report import count_table
    from visiontrain.flags import configs
    from visiontrain.pipelines import make_tfrecords, schema
    from visiontrain.training.runlock import RunLock

    cfg = configs.convert_config()
    fileio.check_writable(cfg.output, "--output")
    try:
        # Two builds into one --output would rename each other's shards away.
        with RunLock(cfg.output, schema.MANIFEST_FILE, flag="--output", job="build"):
            result = make_tfrecords.build(cfg)
    except KeyboardInterrupt:
        print("visiontrain-data: error: interrupted; complete shards are kept, rerun the same "
              "command to resume", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    print(f"layout: {result['layout'] or 'TFDS splits'}")
    print(count_table(result))
    for split, info in result["splits"].items():
        print(f"{split}: {info['num_records']} records in {len(info['shards'])} shards")
    print(f"skipped {len(result['skipped'])} file(s); manifest in {cfg.output}")


def _verify(data_dir: str) -> None:
    from visiontrain.pipelines import manifest

    loaded = manifest.load_manifest(data_dir)
    problems = []
    for split in loaded["splits"]:
        problems += manifest.verify_split(data_dir, loaded, split, True, decode_images=True)
    if problems:
        raise UserError(f"{len(problems)} problem(s) in {data_dir}:\n  " + "\n  ".join(problems))
    shards = sum(len(s["shards"]) for s in loaded["splits"].values())
    print(f"OK: {shards} shards in {data_dir} match the manifest and every image decodes")


def _inspect(data_dir: str) -> None:
    import tensorflow as tf

    from visiontrain import fileio
    from visiontrain.evaluation.report import count_table, sample_grid
    from visiontrain.pipelines import manifest

    loaded = manifest.load_manifest(data_dir)
    # Reading a damaged shard would end in a TF traceback; refuse it by name first.
    manifest.preflight(data_dir, list(loaded["splits"]))
    print(count_table(loaded))
    out = FLAGS.out or os.path.join(data_dir, "inspect_grid.png")
    png = tf.io.encode_png(sample_grid(data_dir, loaded, FLAGS.samples_per_class)).numpy()
    fileio.write_bytes_atomic(out, png)
    print(f"grid of samples (rows in label order: {', '.join(loaded['labels'])}) -> {out}")


_DIR_COMMANDS = {"verify": _verify, "inspect": _inspect}


def main(argv: list[str]) -> None:
    """Dispatches the subcommand given as the first positional argument."""
    command, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    if command == "build" and not args:
        _build()
    elif command in _DIR_COMMANDS and len(args) == 1:
        _DIR_COMMANDS[command](args[0])
    else:
        raise ValueError(
            f"got {argv[1:]}; use one of: build --source=... --output=..., verify DIR, "
            "inspect DIR"
        )


def run() -> None:
    """Console-script entry point."""
    logging.set_verbosity(logging.INFO)
    run_main(main)


if __name__ == "__main__":
    run()
