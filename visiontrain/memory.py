"""The process's memory allocator, set for batches of tens of megabytes.

glibc serves a block larger than its mmap threshold (at most 32 MB; a float32 batch of
64 images at 224 px is 38 MB) with a fresh `mmap` and returns it to the system when it
is freed. Every step then page-faults its batch in again, zero-filled by the kernel:
casting a uint8 batch of 64 at 224 px to float32 cost 0.60 ms per image on one core,
and 0.12 ms once freed blocks are kept for reuse (tcmalloc and jemalloc keep them
anyway; TF's performance guide suggests preloading one).
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap, and this much free memory at the heap's
# top is kept rather than returned: a few batches of the largest steps, not more.
_KEEP_BYTES = 1 << 30


def keep_freed_blocks() -> bool:
    """Asks glibc to reuse freed blocks up to 1 GiB instead of unmapping them.

    For processes that own their allocator: the tools and the benchmark children call
    it first thing; importing visiontrain never does. True when glibc took both
    settings; False elsewhere (macOS, musl), where nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return (mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES) == 1
            and mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES) == 1)
