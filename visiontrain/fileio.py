"""File writes that a crash cannot leave half-done, and reads with errors that name the file.

One durability policy for every write in the package: the new content goes to a
temporary name beside its destination, is fsynced, renamed over the destination,
and the directory holding it is fsynced. A reader therefore sees the old content
or the whole new content, also after a power cut, never a prefix. Temporary names
start with `TMP_PREFIX`, so a cleanup can tell them from real files.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from typing import Any

import tensorflow as tf

from visiontrain.errors import UserError

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


# What the user fixes (space, permissions, a read-only mount), not a bug to trace.
_WHERE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.ENOTDIR, errno.EEXIST}  # the last two: a file where a folder goes


class NotWritable(UserError):
    """A location this job cannot write: a user error (one line, exit 2), naming it."""


def check_writable(directory: str, flag: str) -> None:
    """Refuses, before any work, a directory this job could not write into.

    Writes and removes a 64 KiB probe there; directories made for it are removed
    again, so a check leaves the tree as it found it.

    Raises:
      NotWritable: naming `flag`, the directory and the system's reason.
    """
    directory = os.path.abspath(directory)
    missing = []
    parent = directory
    while not os.path.exists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    probe = temp_path(os.path.join(directory, "write-check"))
    try:
        os.makedirs(directory, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise NotWritable(f"{flag}={directory} cannot be written ({err.strerror}); free space "
                          "there or pass a location you can write to.") from None
    finally:
        if os.path.exists(probe):
            os.remove(probe)
        for path in missing:  # deepest first
            if os.path.isdir(path):
                os.rmdir(path)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes `data` to `path` under the module's durability policy.

    Raises:
      NotWritable: no space, no permission or a read-only location, naming `path`.
    """
    tmp = temp_path(path)
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        publish(tmp, path)
    except OSError as err:
        if err.errno not in _WHERE_ERRNOS:
            raise
        raise NotWritable(f"cannot write {path} ({err.strerror}); free space there or "
                          "pass a location you can write to.") from None
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
