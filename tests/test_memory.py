"""The tools' allocator setting: freed batch-sized blocks are reused, not faulted in again."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.helpers.runs import env

# Allocates and frees a 40 MB block (a float32 batch of 64 at 224 px is 38 MB) five
# times after a first one, and prints the page faults those five took.
_FAULTS = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from visiontrain import memory
    if sys.argv[1] == "keep":
        assert memory.keep_freed_blocks()
    np.ones(10_000_000, np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        np.ones(10_000_000, np.float32)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _FAULTS, mode], env=env(),
                          capture_output=True, text=True, timeout=120, check=True)
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_blocks_are_not_faulted_in_again():
    default, kept = _faults("default"), _faults("keep")
    assert kept * 10 < default, (kept, default)
