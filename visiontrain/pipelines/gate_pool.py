"""The converter's parallel work: the gate and the re-encoding of each source file.

The work runs in threads, not forked processes. Pillow and hashlib release the GIL
while they decode, encode and hash, so threads keep 2 cores busy; on the ants/bees and
CIFAR-10 photos a build was 1.1-1.6x faster with threads than with a fork pool, which
pickles every image twice. And the converter's process may already run TensorFlow's
threads (after a first build, in a trainer or benchmark that converts, in a test
runner): a process forked from it can inherit a lock no thread will release, or a
SIGTERM handler that keeps it from stopping, and both hung the pool at exit here.
"""

from __future__ import annotations

import hashlib
import multiprocessing.pool

from visiontrain.config import ConvertConfig
from visiontrain.pipelines import image_gate
from visiontrain.pipelines.sources import SourceItem


def make_pool(workers: int) -> multiprocessing.pool.ThreadPool:
    """A pool of `workers` threads for `scan_one` and `prepare_one`."""
    return multiprocessing.pool.ThreadPool(workers)


def scan_one(args: tuple[SourceItem, int]) -> tuple[str, int, str]:
    """(sha256, size, rejection reason or '') of one source file."""
    item, max_pixels = args
    try:
        data = item.read()
    except OSError as err:
        return "", 0, f"unreadable: {err.strerror}"
    try:
        image_gate.check(data, max_pixels)
        reason = ""
    except image_gate.RejectedImage as err:
        reason = err.reason
    return hashlib.sha256(data).hexdigest(), len(data), reason


def prepare_one(args: tuple[SourceItem, ConvertConfig]):
    """The file as it will be stored (`image_gate.prepare`), or the reason it cannot be."""
    item, cfg = args
    try:
        return image_gate.prepare(
            item.read(),
            keep_png=cfg.keep_png,
            jpeg_quality=cfg.jpeg_quality,
            max_side=cfg.max_side,
            max_pixels=cfg.max_pixels,
        )
    except image_gate.RejectedImage as err:
        return err.reason
