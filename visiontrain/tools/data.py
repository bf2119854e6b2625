"""visiontrain-data: build, verify and inspect TFRecord shards.

  visiontrain-data build --source=DIR|tfds:NAME[/CONFIG] --output=OUT [--strict] ...
  visiontrain-data verify OUT      # every shard vs the manifest, every image decoded
  visiontrain-data inspect OUT     # per-class counts and OUT/inspect_grid.png
"""

from __future__ import annotations

import os
import sys

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from visiontrain import fileio
from visiontrain.evaluation import render
from visiontrain.flags import convert as convert_flags
from visiontrain.pipelines import make_tfrecords, manifest, preprocess, schema

_OUT = flags.DEFINE_string("out", "", "inspect: grid PNG path (default DIR/inspect_grid.png).")
_SAMPLES = flags.DEFINE_integer("samples_per_class", 8, "inspect: images per class in the grid.")
# 128 + SIGINT, the shell's code for a process ended by Ctrl-C.
EXIT_INTERRUPTED = 130
_TILE = 64
_GAP = 2


def _fail(message: str, code: int = 2) -> None:
    sys.stderr.write(f"visiontrain-data: error: {message}\n")
    sys.exit(code)


def _build() -> None:
    try:
        cfg = convert_flags.convert_config_from_flags()
        result = make_tfrecords.build(cfg)
    except ValueError as err:
        _fail(str(err))
    except make_tfrecords.BuildError as err:
        _fail(str(err), code=1)
    except KeyboardInterrupt:
        _fail("interrupted; complete shards are kept, rerun the same command to resume",
              code=EXIT_INTERRUPTED)
    print(f"layout: {result['layout'] or 'TFDS splits'}")
    print(count_table(result))
    for split, info in result["splits"].items():
        print(f"{split}: {info['num_records']} records in {len(info['shards'])} shards")
    print(f"skipped {len(result['skipped'])} file(s); manifest in {cfg.output}")


def _verify(data_dir: str) -> None:
    try:
        loaded = manifest.load_manifest(data_dir)
    except ValueError as err:
        _fail(str(err))
    problems = []
    for split in loaded["splits"]:
        problems += manifest.verify_split(data_dir, loaded, split, True, decode_images=True)
    if problems:
        _fail(f"{len(problems)} problem(s) in {data_dir}:\n  " + "\n  ".join(problems), code=1)
    shards = sum(len(s["shards"]) for s in loaded["splits"].values())
    print(f"OK: {shards} shards in {data_dir} match the manifest and every image decodes")


def count_table(loaded: dict) -> str:
    """A fixed-width table of records per class (rows) and split (columns)."""
    splits = list(loaded["splits"])
    width = max(len(n) for n in loaded["labels"] + ["class"])
    lines = [f"{'class':<{width}}" + "".join(f"{s:>12}" for s in splits)]
    for name in loaded["labels"] + ["total"]:
        counts = [
            loaded["splits"][s]["num_records"] if name == "total"
            else loaded["splits"][s]["class_counts"].get(name, 0)
            for s in splits
        ]
        lines.append(f"{name:<{width}}" + "".join(f"{c:>12}" for c in counts))
    return "\n".join(lines)


def sample_grid(data_dir: str, loaded: dict, per_class: int) -> np.ndarray:
    """A uint8 RGB grid: one row per label, named on its left, up to `per_class` samples."""
    rows = [[] for _ in loaded["labels"]]
    files = [os.path.join(data_dir, s["file"]) for split in loaded["splits"].values()
             for s in split["shards"]]
    for record in tf.data.TFRecordDataset(files):
        features = schema.parse_example(record)
        row = rows[int(features[schema.LABEL])]
        if len(row) < per_class:
            image = preprocess.decode_rgb(features[schema.ENCODED])
            row.append(tf.cast(tf.image.resize_with_pad(image, _TILE, _TILE), tf.uint8).numpy())
        if all(len(r) >= per_class for r in rows):
            break
    return render.labelled_rows(rows, loaded["labels"], _TILE, _GAP)


def _inspect(data_dir: str) -> None:
    try:
        loaded = manifest.load_manifest(data_dir)
        # Reading a damaged shard would end in a TF traceback; refuse it by name first.
        manifest.preflight(data_dir, list(loaded["splits"]))
    except ValueError as err:
        _fail(str(err))
    print(count_table(loaded))
    out = _OUT.value or os.path.join(data_dir, "inspect_grid.png")
    png = tf.io.encode_png(sample_grid(data_dir, loaded, _SAMPLES.value)).numpy()
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
        raise app.UsageError(
            f"got {argv[1:]}; use one of: build --source=... --output=..., verify DIR, "
            "inspect DIR"
        )


def run() -> None:
    """Console-script entry point."""
    logging.set_verbosity(logging.INFO)
    app.run(main)


if __name__ == "__main__":
    run()
