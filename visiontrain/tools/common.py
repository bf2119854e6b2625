"""What every visiontrain tool shares: flag parsing, help, and clean user errors.

Exit codes (README, "User's guide"): 0 done; 2 a bad invocation or bad input, said in
one line; 130 interrupted; anything else (1 with a traceback) is a bug.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Callable

from absl import app, flags

from visiontrain import memory
from visiontrain.errors import UserError

# Errors that mean "the input or the flags are wrong": shown as one clear line and
# exit code 2. Anything else is a bug and keeps its traceback.
USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    FloatingPointError,
    UserError,
)
EXIT_USER_ERROR = 2
# 128 + SIGINT, the shell's code for a process ended by Ctrl-C.
EXIT_INTERRUPTED = 130
_SHORT_HELP = ("--help", "-help", "--helpshort", "-helpshort", "-?", "-h")
_FULL_HELP = ("--helpfull", "-helpfull")


def tool_name(main: Callable) -> str:
    """visiontrain-NAME of the tool module defining `main`, also when run with -m."""
    module = sys.modules[main.__module__]
    spec = getattr(module, "__spec__", None)
    return "visiontrain-" + (spec.name if spec else main.__module__).rsplit(".", 1)[-1]


def help_text(description: str, full: bool, flag_values: flags.FlagValues = flags.FLAGS) -> str:
    """The tool's description and its own flags, a section per concern in the order the
    tool defines them; with `full`, absl's and TF's flags after."""
    ours, theirs = [], []
    for module in flag_values.flags_by_module_dict():
        text = flag_values.module_help(module).strip()
        (ours if "visiontrain" in module else theirs).append(text)
    parts = [description.strip(), "flags:", *ours]
    if full:
        parts += ["flags of absl and TensorFlow:", *sorted(theirs)]
    else:
        parts.append("--helpfull also lists the flags of absl and TensorFlow.")
    return "\n\n".join(parts) + "\n"


# absl's wording for a required flag left out (said as "--NAME is required"), and the
# "flags a=1, b=2: " it puts before a multi-flag validator's message, which names them.
_ABSL_REQUIRED = re.compile(r"flag --(\w+)=None: Flag --\1 must have a value other than None\.")
_ABSL_MULTI = re.compile(r"^flags \w+=[^:]*: ")


def flag_error_line(error: flags.Error) -> str:
    """absl's message for a flag error, on one line, a missing flag said plainly."""
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return _ABSL_MULTI.sub("", _ABSL_REQUIRED.sub(r"--\1 is required", text))


def _parser(name: str, description: str) -> Callable[[list[str]], list[str]]:
    def parse(argv: list[str]) -> list[str]:
        asked = set(argv[1:])
        if asked & set(_SHORT_HELP + _FULL_HELP):
            sys.stdout.write(help_text(description, full=bool(asked & set(_FULL_HELP))))
            sys.exit(0)
        try:
            return flags.FLAGS(argv)
        except flags.Error as err:
            print(f"{name}: error: {flag_error_line(err)} (see {name} --help)", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    return parse


def run_main(main: Callable[[list[str]], int | None]) -> None:
    """Runs `main` as an absl app; bad flags and user errors exit 2 with their message.

    `--help` prints the tool module's docstring and the tool's own flags; `--helpfull`
    adds absl's and TensorFlow's. The process keeps freed memory blocks for reuse
    (`memory.keep_freed_blocks`). Set VISIONTRAIN_TRACEBACK=1 to see the full
    traceback of a user error.
    """
    name = tool_name(main)
    memory.keep_freed_blocks()

    def guarded(argv):
        _log_once()
        try:
            return main(argv)
        except KeyboardInterrupt:
            # What is half written is a temporary name the next run cleans (fileio).
            print(f"{name}: error: interrupted; nothing was published, rerun the same "
                  "command to do it again", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        except USER_ERRORS as err:
            if os.environ.get("VISIONTRAIN_TRACEBACK"):
                raise
            print(f"{name}: error: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    app.run(guarded, flags_parser=_parser(name, sys.modules[main.__module__].__doc__ or ""))


def _log_once() -> None:
    """Drops the stderr handler TF gives its logger, so each line prints once.

    TF adds that handler when its logger is made before absl's handler is on the root
    logger (at import, before app.run), and its lines propagate to absl's as well.
    """
    tf_logger = logging.getLogger("tensorflow")
    for handler in list(tf_logger.handlers):
        if type(handler) is logging.StreamHandler:
            tf_logger.removeHandler(handler)
