"""What every visiontrain tool shares: quiet TF start-up and clean user errors."""

from __future__ import annotations

import os
import sys
from typing import Callable

from absl import app

# Errors that mean "the input or the flags are wrong": shown as one clear line and
# exit code 2. Anything else is a bug and keeps its traceback.
USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    FloatingPointError,
    RuntimeError,
)
EXIT_USER_ERROR = 2


def run_main(main: Callable[[list[str]], int | None]) -> None:
    """Runs `main` as an absl app; user errors exit 2 with a one-line message.

    Set VISIONTRAIN_TRACEBACK=1 to see the full traceback of a user error.
    """

    def guarded(argv):
        try:
            return main(argv)
        except USER_ERRORS as err:
            if os.environ.get("VISIONTRAIN_TRACEBACK"):
                raise
            print(f"{os.path.basename(sys.argv[0])}: error: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    app.run(guarded)
