"""`visiontrain-bench serve`: latency and throughput of an export's `serving_default`.

For each batch size (1, 2, 4, ..., 64) the signature is called on real encoded images
(the run's validation images, as served: JPEG/PNG bytes) and every call is timed:
p50/p95/p99 latency and throughput (images per second over the median call). Two
paths, each in its own process and interleaved in rounds (`harness`):

    in_process  tf.saved_model.load in a process that has imported visiontrain
    tf_only     the same calls in a process that imports only TensorFlow, as a server

From the tf_only figures it writes, beside the version directory, TF Serving's
`batching_parameters.txt` (with its reasoning as comments) and `monitoring_config.txt`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from visiontrain.bench import harness
from visiontrain.fileio import write_bytes_atomic
from visiontrain.pipelines import record_sources

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
MODES = ("in_process", "tf_only")
# A batch this close to the best throughput is big enough: larger ones add latency
# for little more throughput.
KNEE = 0.9
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"

# argv: SAVED_MODEL IMAGES_TFRECORD BATCH_SIZES_JSON CALLS. Imports only TensorFlow.
TIMING_SCRIPT = r"""
import json, sys, time
import tensorflow as tf

saved_model, images_file, batch_sizes, calls = sys.argv[1:5]
encoded = [r.numpy() for r in tf.data.TFRecordDataset(images_file)]
serve = tf.saved_model.load(saved_model).signatures["serving_default"]
result = {}
for batch in json.loads(batch_sizes):
    request = tf.constant([encoded[i % len(encoded)] for i in range(batch)])
    for _ in range(2):
        serve(image_bytes=request)
    seconds = []
    for _ in range(int(calls)):
        start = time.perf_counter()
        serve(image_bytes=request)["probabilities"].numpy()
        seconds.append(time.perf_counter() - start)
    result[str(batch)] = seconds
print("TIMES " + json.dumps(result))
"""


def _timings(mode: str, saved_model: str, images_file: str, batch_sizes, calls: int):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if mode == "tf_only":
        env.pop("PYTHONPATH", None)
        command = [sys.executable, "-c", TIMING_SCRIPT]
    else:
        command = [sys.executable, "-c", "import visiontrain.serving.export\n" + TIMING_SCRIPT]
    done = subprocess.run([*command, saved_model, images_file, json.dumps(list(batch_sizes)),
                           str(calls)], capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise RuntimeError(f"serve benchmark ({mode}) failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("TIMES "))
    return json.loads(line[len("TIMES "):])


def summarize(seconds: list[float], batch: int) -> dict[str, float]:
    """p50/p95/p99 latency in ms and throughput (images/s at the median call)."""
    ms = np.asarray(seconds) * 1000.0
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
            "images_per_s": float(batch / (p50 / 1000.0)), "calls": len(seconds)}


def bench_serve(saved_model: str, rounds: int = 3, calls: int = 20,
                batch_sizes=BATCH_SIZES, images: int = 64) -> dict[str, Any]:
    """{mode: {batch: figures}} over every round's calls, plus the images used."""
    meta = json.load(open(os.path.join(saved_model, "assets.extra", "visiontrain.json")))
    config = json.load(open(os.path.join(meta["run_dir"], "config.json")))
    records = record_sources.encoded_records(config["data"]["data_dir"], "validation", 1, True)
    encoded = [e[0] for e, _ in records.take(images).as_numpy_iterator()]
    with tempfile.TemporaryDirectory(prefix="visiontrain-serve-") as work:
        images_file = os.path.join(work, "images.tfrecord")
        with tf.io.TFRecordWriter(images_file) as writer:
            for e in encoded:
                writer.write(e)
        runs = harness.interleaved_rounds(
            MODES, rounds, lambda m: _timings(m, saved_model, images_file, batch_sizes, calls))
    figures = {mode: {str(b): summarize([s for r in runs[mode] for s in r[str(b)]], b)
                      for b in batch_sizes} for mode in MODES}
    return {"saved_model": saved_model, "images": len(encoded), "rounds": rounds,
            "calls_per_round": calls, **figures}


def batching_parameters(figures: dict[str, dict[str, float]], cpus: int) -> str:
    """TF Serving's BatchingParameters text proto, chosen from one path's figures."""
    sizes = sorted(int(b) for b in figures)
    best = max(figures[str(b)]["images_per_s"] for b in sizes)
    max_batch = next(b for b in sizes if figures[str(b)]["images_per_s"] >= KNEE * best)
    timeout_us = int(round(figures["1"]["p50_ms"] * 1000))
    allowed = [b for b in sizes if b <= max_batch]
    lines = [
        "# Written by visiontrain-bench serve from measured serving_default figures",
        "# (tf_only path, " + ", ".join(
            f"batch {b}: {figures[str(b)]['images_per_s']:.0f} img/s p50 "
            f"{figures[str(b)]['p50_ms']:.1f} ms" for b in sizes) + ").",
        f"# max_batch_size: the smallest batch reaching {KNEE:.0%} of the best throughput "
        f"({best:.0f} img/s); larger ones add latency for little more throughput.",
        f"max_batch_size {{ value: {max_batch} }}",
        "# batch_timeout_micros: the p50 latency of one image alone; waiting longer to fill a "
        "batch would cost a lone request more than serving it at once.",
        f"batch_timeout_micros {{ value: {timeout_us} }}",
        "# num_batch_threads: one per CPU core, so batches run in parallel without "
        "oversubscribing.",
        f"num_batch_threads {{ value: {cpus} }}",
        "# allowed_batch_sizes: the measured sizes up to max_batch_size (the last must equal it);"
        " a batch is padded up to the next one.",
        *[f"allowed_batch_sizes: {b}" for b in allowed],
    ]
    return "\n".join(lines) + "\n"


def monitoring_config() -> str:
    """TF Serving's MonitoringConfig text proto: Prometheus metrics on the REST port."""
    return ("# Prometheus scrapes http://HOST:8501" + PROMETHEUS_PATH + "\n"
            "prometheus_config {\n  enable: true\n"
            f'  path: "{PROMETHEUS_PATH}"\n}}\n')


def write_outputs(saved_model: str, result: dict[str, Any]) -> dict[str, str]:
    """batching_parameters.txt, monitoring_config.txt and serve_bench.png beside the
    version directory (TF Serving ignores non-numeric names there)."""
    model_dir = os.path.dirname(os.path.abspath(saved_model))
    paths = {"batching": os.path.join(model_dir, "batching_parameters.txt"),
             "monitoring": os.path.join(model_dir, "monitoring_config.txt"),
             "plot": os.path.join(model_dir, "serve_bench.png")}
    write_bytes_atomic(paths["plot"], tf.io.encode_png(plot(result)).numpy())
    write_bytes_atomic(paths["batching"], batching_parameters(
        result["tf_only"], os.cpu_count() or 1).encode())
    write_bytes_atomic(paths["monitoring"], monitoring_config().encode())
    return paths


_COLORS = {"in_process": (230, 120, 0), "tf_only": (8, 48, 107)}


def _panel(result: dict[str, Any], key: str, title: str, side: int = 260) -> Image.Image:
    """One line chart of `key` against batch size (log2 axis), a line per path."""
    font = ImageFont.load_default(size=12)
    left, top, bottom = 52, 22, 34
    panel = Image.new("RGB", (left + side + 12, top + side + bottom), "white")
    draw = ImageDraw.Draw(panel)
    sizes = [int(b) for b in result[MODES[0]]]
    keys = (key,) if key == "images_per_s" else ("p50_ms", "p99_ms")
    high = max(result[m][str(b)][k] for m in MODES for b in sizes for k in keys) * 1.1
    draw.text((left, 4), title, fill="black", font=font)
    draw.rectangle((left, top, left + side, top + side), outline="black")

    def point(i, value):
        return (left + i * side / max(len(sizes) - 1, 1), top + side - value / high * side)

    for mode in MODES:
        for k in keys:
            points = [point(i, result[mode][str(b)][k]) for i, b in enumerate(sizes)]
            draw.line(points, fill=_COLORS[mode], width=3 if k != "p99_ms" else 1)
    for i, b in enumerate(sizes):
        x, _ = point(i, 0)
        draw.text((x - 6, top + side + 4), str(b), fill="black", font=font)
    for value in (0.0, high / 2, high):
        _, y = point(0, value)
        draw.text((4, y - 7), _tick(value), fill="black", font=font)
    draw.text((left + side // 2 - 30, top + side + 18), "batch size", fill="black", font=font)
    return panel


def _tick(value: float) -> str:
    """An axis label people read at a glance: 2,300 and 4.5, never 2.3e+03."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def plot(result: dict[str, Any]) -> np.ndarray:
    """uint8 RGB: latency (p50 thick, p99 thin) and throughput against batch size."""
    panels = [_panel(result, "p50_ms", "latency ms (p50 thick, p99 thin)"),
              _panel(result, "images_per_s", "throughput images/s")]
    font = ImageFont.load_default(size=12)
    canvas = Image.new("RGB", (sum(p.width for p in panels), panels[0].height + 18), "white")
    x = 0
    for panel in panels:
        canvas.paste(panel, (x, 0))
        x += panel.width
    draw = ImageDraw.Draw(canvas)
    for i, mode in enumerate(MODES):
        draw.text((60 + 160 * i, panels[0].height), mode, fill=_COLORS[mode], font=font)
    return np.asarray(canvas, np.uint8)


def print_table(result: dict[str, Any]) -> None:
    print(f"serving_default of {result['saved_model']}: {result['images']} images, "
          f"{result['rounds']} rounds x {result['calls_per_round']} calls")
    print(f"{'path':<11} {'batch':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'img/s':>8}")
    for mode in MODES:
        for batch, f in result[mode].items():
            print(f"{mode:<11} {batch:>5} {f['p50_ms']:8.2f} {f['p95_ms']:8.2f} "
                  f"{f['p99_ms']:8.2f} {f['images_per_s']:8.1f}")
    for name, path in result.get("written", {}).items():
        print(f"wrote {path}")
