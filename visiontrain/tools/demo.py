"""visiontrain-demo: the end-to-end demo behind `make demo`, digit scans to a served prediction.

Runs the same console tools a user would, in order, each in its own process:
scikit-learn's 1,797 handwritten digit scans -> a class-per-folder PNG tree ->
`visiontrain-data build` -> `visiontrain-train` (MirroredStrategy, 2 CPU replicas)
-> `visiontrain-export` -> `visiontrain-predict` on held-out scans -> a summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import flags

from visiontrain.errors import UserError
from visiontrain.flags.jobs import define_demo_flags
from visiontrain.pipelines.digits import write_digits_tree
from visiontrain.tools.common import run_main

define_demo_flags()
FLAGS = flags.FLAGS


def _tool(name: str, *args: str) -> str:
    command = [sys.executable, "-m", f"visiontrain.tools.{name}", *args]
    print("$ visiontrain-" + name + " " + " ".join(args), flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        sys.stderr.write(result.stdout + result.stderr)
        raise UserError(f"visiontrain-{name} failed with exit code {result.returncode} "
                        "(its output is above).")
    return result.stdout


def main(argv: list[str]) -> None:
    del argv
    start = time.perf_counter()
    # Relative as given: the tools store absolute paths, the printed commands stay short.
    work = FLAGS.workdir
    images_dir, shards_dir = os.path.join(work, "digits"), os.path.join(work, "shards")
    run_dir, export_dir = os.path.join(work, "run"), os.path.join(work, "export", "digits")
    for path in (images_dir, shards_dir, run_dir, export_dir):
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists from an earlier demo; run `make clean` first.")

    counts = write_digits_tree(images_dir, FLAGS.seed, FLAGS.val_fraction)
    print(f"Wrote {counts['train']} training and {counts['val']} held-out digit scans "
          f"to {images_dir}", flush=True)
    _tool("data", "build", f"--source={images_dir}", f"--output={shards_dir}",
          "--keep_png", "--num_shards=4", f"--seed={FLAGS.seed}")
    _tool("train", f"--flagfile={FLAGS.flagfile_train}", f"--data_dir={shards_dir}",
          f"--run_dir={run_dir}")
    _tool("export", f"--run_dir={run_dir}", f"--export_dir={export_dir}")
    version_dir = os.path.join(export_dir, "1")
    held_out = [os.path.join(images_dir, "val", str(d), sorted(
        os.listdir(os.path.join(images_dir, "val", str(d))))[0]) for d in range(0, 10, 2)]
    predictions = json.loads(
        _tool("predict", f"--saved_model={version_dir}", "--json", *held_out)
    )
    results = json.load(open(os.path.join(run_dir, "results.json")))

    print("\n=== visiontrain demo summary ===")
    print(f"validation accuracy : {results['validation']['accuracy']:.4f} "
          f"on {results['validation']['examples']} held-out scans")
    print(f"images              : {images_dir}")
    print(f"shards + manifest   : {shards_dir}")
    print(f"run directory       : {run_dir}")
    print(f"SavedModel          : {version_dir}")
    print("predictions through the SavedModel alone:")
    for p in predictions:
        truth = os.path.basename(os.path.dirname(p["file"]))
        best = p["top_k"][0]
        print(f"  {os.path.relpath(p['file'], work):<22} true {truth}  "
              f"predicted {best['label']} ({best['score']:.3f})")
    print(f"TensorBoard         : tensorboard --logdir {run_dir}")
    print(f"total time          : {time.perf_counter() - start:.0f} s")


def run() -> None:
    run_main(main)


if __name__ == "__main__":
    run()
