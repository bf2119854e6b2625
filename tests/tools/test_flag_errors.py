"""Every tool as users call it: a flag error is one line and exit 2; --help describes it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.helpers.runs import REPO

pytestmark = pytest.mark.slow
TOOLS = ("bench", "data", "demo", "evaluate", "export", "predict", "train")
# TensorFlow's C++ start-up lines, printed at import before absl logging starts; no
# environment variable silences them in TF 2.21. Only visiontrain-train imports TF
# before parsing its flags (its flag help lists the model and optimizer registries).
TF_CHATTER = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} )")


def run_tool(tool, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-m", f"visiontrain.tools.{tool}", *args],
                            capture_output=True, text=True, env=env, timeout=180, cwd=cwd)
    stderr = [line for line in result.stderr.splitlines() if not TF_CHATTER.match(line)]
    return result, stderr


# One bad flag per tool, of the kinds absl refuses: unknown, malformed, out of bounds,
# missing, failing a validator.
BAD = {
    "bench": ("--batch=0", "--batch"),
    "data": ("--jpeg_quality=0", "--jpeg_quality must be in [1, 100]"),
    "demo": ("--val_fraction=0.9", "--val_fraction"),
    "evaluate": ("--split=validation", "error: Pass exactly one of --run_dir and --saved_model"),
    "export": ("--run_dir=r", "--export_dir is required"),
    "predict": ("--saved_model", "--saved_model"),
    "train": ("--data_dir=d", "--run_dir is required"),
}


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("kind", ["unknown", "bad"])
def test_a_flag_error_is_one_line_and_exit_2(tool, kind):
    arg, message = ("--no_such_flag=1", "Unknown command line flag 'no_such_flag'") \
        if kind == "unknown" else BAD[tool]
    result, stderr = run_tool(tool, arg)
    if tool != "train":
        stderr = result.stderr.splitlines()  # no TensorFlow chatter to leave out
    assert result.returncode == 2, result.stderr
    assert len(stderr) == 1 and stderr[0].startswith(f"visiontrain-{tool}: error: "), stderr
    assert message in stderr[0] and f"see visiontrain-{tool} --help" in stderr[0]


@pytest.mark.parametrize("tool", [t for t in TOOLS if t != "train"])
def test_tools_parse_their_flags_before_importing_tensorflow(tool):
    code = (f"import sys, visiontrain.tools.{tool}\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": REPO}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("tool", TOOLS)
def test_help_shows_the_tools_description_and_its_flags(tool):
    result, _ = run_tool(tool, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"visiontrain-{tool}: ")
    assert "flags:" in result.stdout and "--helpfull" in result.stdout
    ours = result.stdout.split("flags:", 1)[1].split("--helpfull")[0]
    assert "tensorflow" not in ours.lower()
    # The tool defines what docs/flags.md lists for it, section by section.
    from visiontrain.flags import reference

    listed = reference.tool_flags(f"visiontrain-{tool}").flags_by_module_dict()
    shown = re.findall(r"^(visiontrain\.\S+):$", ours, re.MULTILINE)
    assert shown == list(listed)
    assert sorted(re.findall(r"^  --(?:\[no\])?(\w+):", ours, re.MULTILINE)) == sorted(
        flag.name for module_flags in listed.values() for flag in module_flags)


def test_train_help_prints_a_section_per_concern():
    result, _ = run_tool("train", "--help")
    for section in ("visiontrain.data:", "visiontrain.model:", "visiontrain.optimizer:",
                    "visiontrain.transfer:", "visiontrain.distribution:"):
        assert f"\n{section}\n" in result.stdout, section


def test_data_help_names_its_subcommands():
    result, _ = run_tool("data", "--help")
    for command in ("build --source=", "verify OUT", "inspect OUT"):
        assert f"visiontrain-data {command}" in result.stdout


def test_model_help_lists_the_registered_models():
    from visiontrain.models.registry import available_models

    result, _ = run_tool("train", "--help")
    text = " ".join(result.stdout.split())
    model_help = text[text.index("--model:"):]
    for name in available_models():
        assert name in model_help.split("(default:")[0], name


def test_helpfull_lists_our_flags_before_absl_and_tensorflow():
    result, _ = run_tool("train", "--helpfull")
    assert result.returncode == 0, result.stderr
    ours, theirs = result.stdout.split("flags of absl and TensorFlow:")
    assert "--data_dir" in ours and "--verbosity" not in ours
    assert "--verbosity" in theirs and "--data_dir" not in theirs
