"""File writes that a crash cannot leave half-done, and reads with errors that name the file.

One durability policy for every write in the package: the new content goes to a
temporary name beside its destination, is fsynced, renamed over the destination,
and the directory holding it is fsynced. A reader therefore sees the old content
or the whole new content, also after a power cut, never a prefix. Temporary names
start with `TMP_PREFIX`, so a cleanup can tell them from real files.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import tensorflow as tf

TMP_PREFIX = ".tmp-"


def temp_path(path: str) -> str:
    """A temporary sibling of `path` that keeps its name, so suffix checks still pass.

    Keras, for one, refuses `save_weights` to a name not ending in `.weights.h5`.
    """
    directory, name = os.path.split(path)
    return os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{name}")


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: str) -> None:
    # Children before parents: a directory entry is durable only once its file is.
    for directory, _, files in os.walk(path, topdown=False):
        for name in files:
            _fsync(os.path.join(directory, name))
        _fsync(directory)


def publish(tmp: str, path: str) -> None:
    """Makes the finished file or directory `tmp` durable, then renames it to `path`.

    A file replaces an existing `path`; a directory is only ever renamed to a new
    name (a rename cannot replace a non-empty directory atomically).

    Raises:
      FileExistsError: `tmp` is a directory and `path` already exists.
    """
    if os.path.isdir(tmp):
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists; a published directory is never replaced")
        _fsync_tree(tmp)
    else:
        _fsync(tmp)
    os.replace(tmp, path)
    _fsync(os.path.dirname(os.path.abspath(path)))


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes `data` to `path` under the module's durability policy."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(path: str, payload: Any) -> None:
    """Writes `payload` as indented, key-sorted JSON (stable bytes for equal payloads)."""
    text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def sha256_file(path: str) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (any tf.io.gfile path)."""
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str) -> Any:
    """Reads a JSON file, with an error that names it when it is missing."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist.")
    with open(path, encoding="utf-8") as f:
        return json.load(f)
