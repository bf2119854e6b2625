"""File writes that a crash cannot leave half-done, and reads with errors that name the file."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def write_json_atomic(path: str, payload: Any) -> None:
    """Writes JSON to a temporary file beside `path`, then renames it into place."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    """Reads a JSON file, with an error that names it when it is missing."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist.")
    with open(path) as f:
        return json.load(f)
