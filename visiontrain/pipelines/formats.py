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
    "webp": (b"RIFF",),
}
# A RIFF file is WebP only when its form type says so (WAV and AVI are RIFF too):
# the bytes that must also stand at an offset, per format.
FORM = {"webp": (8, b"WEBP")}
NAMES = tuple(MAGIC)


def sniff(data: bytes) -> str | None:
    """The format `data` is marked as ("jpeg", "png", "gif", "bmp", "webp"), or None."""
    for name, prefixes in MAGIC.items():
        offset, form = FORM.get(name, (0, b""))
        if data.startswith(prefixes) and data[offset : offset + len(form)] == form:
            return name
    return None
