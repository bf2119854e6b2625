"""What every visiontrain tool shares: quiet TF start-up and clean user errors."""

from __future__ import annotations

import logging
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
        _log_once()
        try:
            return main(argv)
        except USER_ERRORS as err:
            if os.environ.get("VISIONTRAIN_TRACEBACK"):
                raise
            print(f"{os.path.basename(sys.argv[0])}: error: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    app.run(guarded)


def _log_once() -> None:
    """Drops the stderr handler TF gives its logger, so each line prints once.

    TF adds that handler when its logger is made before absl's handler is on the root
    logger (at import, before app.run), and its lines propagate to absl's as well.
    """
    tf_logger = logging.getLogger("tensorflow")
    for handler in list(tf_logger.handlers):
        if type(handler) is logging.StreamHandler:
            tf_logger.removeHandler(handler)
