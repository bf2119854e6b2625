"""Post-export checks, run in a fresh process that imports only TensorFlow.

The exporter's own process has the model's Python code loaded, so a SavedModel
that silently depends on it (a Lambda layer, a py_function, a pickled object)
would still work there. `CHECK_SCRIPT` runs with `sys.executable` and imports
nothing but tensorflow: it loads the SavedModel, calls every signature on the
same requests the exporter used, and reports the largest difference.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

import tensorflow as tf

TOLERANCE = 1e-5
FORBIDDEN_OPS = (b"PyFunc", b"EagerPyFunc", b"PyFuncStateless")

# argv: SAVED_MODEL_DIR TENSOR_DIR. TENSOR_DIR holds SIGNATURE__in__NAME__DTYPE and
# SIGNATURE__out__NAME__DTYPE files written by tf.io.serialize_tensor.
CHECK_SCRIPT = r"""
import ctypes, json, os, signal, sys
try:  # Linux: die with the exporter (PR_SET_PDEATHSIG) rather than outlive a killed one.
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)
except (OSError, AttributeError):
    pass
if os.getppid() == 1:  # the exporter died before the line above ran
    sys.exit(1)
import tensorflow as tf

saved_model_dir, tensor_dir = sys.argv[1], sys.argv[2]
loaded = tf.saved_model.load(saved_model_dir)
requests = {}
for name in sorted(os.listdir(tensor_dir)):
    signature, kind, tensor, dtype = name.split("__")
    value = tf.io.parse_tensor(tf.io.read_file(os.path.join(tensor_dir, name)), dtype)
    requests.setdefault(signature, {"in": {}, "out": {}})[kind][tensor] = value
report = {}
for signature, io in sorted(requests.items()):
    got = loaded.signatures[signature](**io["in"])
    diffs = {}
    for key, expected in io["out"].items():
        if expected.dtype == tf.string:
            diffs[key] = 0.0 if bool(tf.reduce_all(got[key] == expected)) else float("inf")
        else:
            delta = tf.abs(tf.cast(got[key], tf.float64) - tf.cast(expected, tf.float64))
            diffs[key] = float(tf.reduce_max(delta)) if tf.size(delta) else 0.0
    report[signature] = diffs
print("CHECK_RESULT " + json.dumps(report))
"""


def _write_tensors(directory: str, kind: str, signature: str, tensors: dict[str, Any]) -> None:
    for name, value in tensors.items():
        value = tf.convert_to_tensor(value)
        path = os.path.join(directory, f"{signature}__{kind}__{name}__{value.dtype.name}")
        tf.io.write_file(path, tf.io.serialize_tensor(value))


def check_in_subprocess(
    saved_model_dir: str,
    requests: dict[str, dict[str, Any]],
    expected: dict[str, dict[str, Any]],
) -> dict[str, dict[str, float]]:
    """Max abs difference per signature and output between a TF-only process and `expected`.

    Raises:
      RuntimeError: the subprocess failed (its stderr tail is in the message).
    """
    with tempfile.TemporaryDirectory(prefix="visiontrain-check-") as workdir:
        tensors = os.path.join(workdir, "tensors")
        os.makedirs(tensors)
        for signature, inputs in requests.items():
            _write_tensors(tensors, "in", signature, inputs)
            _write_tensors(tensors, "out", signature, expected[signature])
        script = os.path.join(workdir, "check_saved_model.py")
        with open(script, "w") as f:
            f.write(CHECK_SCRIPT)
        # A clean environment: no PYTHONPATH, so visiontrain cannot be imported.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        # The child runs in `workdir`: a relative path would name another directory there.
        proc = subprocess.run(
            [sys.executable, "-I", script, os.path.abspath(saved_model_dir), tensors],
            capture_output=True, text=True, env=env, cwd=workdir,
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("CHECK_RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"The TF-only check of {saved_model_dir} failed (exit {proc.returncode}):\n"
            f"{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len("CHECK_RESULT "):])


def forbidden_ops(saved_model_dir: str) -> list[str]:
    """Python-callback op names found in saved_model.pb (must be empty)."""
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        graph = f.read()
    return [op.decode() for op in FORBIDDEN_OPS if re.search(rb"\b" + op + rb"\b", graph)]


def saved_model_cli_show(saved_model_dir: str) -> str:
    """`saved_model_cli show --all --dir DIR`, run in a subprocess."""
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    command = [cli] if os.path.exists(cli) else [
        sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        command + ["show", "--all", "--dir", saved_model_dir],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"saved_model_cli failed on {saved_model_dir}:\n{proc.stderr[-2000:]}")
    return proc.stdout


def describe_signatures(cli_output: str) -> str:
    """The stable part of saved_model_cli output: signatures, tensor names, dtypes, shapes.

    Graph tensor names (`name: serving_default_image_bytes:0`) and the
    "Concrete Functions" section depend on tracing order and Keras internals, so
    they are dropped; what a client relies on is kept, in a sorted order.
    """
    text = cli_output.split("Concrete Functions")[0]
    signatures: dict[str, list[str]] = {}
    current, tensor = None, None
    for raw in text.splitlines():
        line = raw.strip()
        match = re.match(r"signature_def\['(.+)'\]:", line)
        if match:
            current = match.group(1)
            signatures[current] = []
            continue
        if current is None:
            continue
        match = re.match(r"(inputs|outputs)\['(.+)'\] tensor_info:", line)
        if match:
            tensor = f"{match.group(1)} {match.group(2)}"
            continue
        if tensor and line.startswith(("dtype:", "shape:")):
            signatures[current].append(f"{tensor} {line}")
        elif line.startswith("Method name is:"):
            signatures[current].append(line)
    out = []
    for name in sorted(signatures):
        out.append(f"signature {name}")
        out.extend(f"  {entry}" for entry in sorted(signatures[name]))
    return "\n".join(out) + "\n"


def golden_diff(description: str, golden_path: str) -> list[str]:
    """Lines that differ between a description and a checked-in golden (empty: equal)."""
    import difflib

    with open(golden_path) as f:
        golden = f.read()
    return [
        line for line in difflib.unified_diff(
            golden.splitlines(), description.splitlines(), "golden", "export", lineterm=""
        )
    ]
