"""The image formats visiontrain reads, known by their magic bytes: the one table of them.

The converter's gate, the eval/serving decoder and the serving request checks all
sniff formats here, so a file one of them accepts is never unknown to another.
This module deliberately does not import TensorFlow: the gate runs it in the
converter's worker processes.
"""

from __future__ import annotations

# Every prefix that marks a format; a format may have several (GIF's two versions).
MAGIC = {
    "jpeg": (b"\xff\xd8\xff",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "gif": (b"GIF87a", b"GIF89a"),
    "bmp": (b"BM",),
}
NAMES = tuple(MAGIC)


def sniff(data: bytes) -> str | None:
    """The format `data` starts like ("jpeg", "png", "gif", "bmp"), or None."""
    for name, prefixes in MAGIC.items():
        if data.startswith(prefixes):
            return name
    return None
