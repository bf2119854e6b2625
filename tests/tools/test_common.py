"""run_main: which errors are the user's (one line, exit 2) and which are bugs (traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers.runs import REPO

APP = textwrap.dedent("""
    import sys
    from visiontrain.errors import UserError
    from visiontrain.tools.common import run_main

    ERRORS = {"value": ValueError, "missing": FileNotFoundError, "user": UserError,
              "runtime": RuntimeError, "key": KeyError}

    def main(argv):
        raise ERRORS[argv[1]]("what is wrong; how to fix it")

    run_main(main)
""")


def run_app(kind, **env):
    return subprocess.run([sys.executable, "-c", APP, kind], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": REPO, **env}, timeout=60)


@pytest.mark.parametrize("kind", ["value", "missing", "user"])
def test_user_errors_are_one_line_and_exit_2(kind):
    result = run_app(kind)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "visiontrain-__main__: error: what is wrong; how to fix it"]


@pytest.mark.parametrize("kind", ["runtime", "key"])
def test_other_errors_are_bugs_and_keep_their_traceback(kind):
    result = run_app(kind)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "what is wrong" in result.stderr


def test_visiontrain_traceback_shows_a_user_errors_traceback():
    result = run_app("user", VISIONTRAIN_TRACEBACK="1")
    assert result.returncode == 1 and "Traceback" in result.stderr
