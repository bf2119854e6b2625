"""Small image files of every mode the converter and serving must agree on, made by PIL."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _png16_rgb(pixels: np.ndarray) -> bytes:
    # Pillow cannot write 16-bit colour PNGs; the chunks are simple enough to write.
    height, width, _ = pixels.shape
    raw = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def _palette(seed: int) -> Image.Image:
    image = Image.fromarray(np.random.default_rng(seed).integers(0, 4, (20, 24), np.uint8), "P")
    image.putpalette([250, 10, 10, 10, 200, 10, 10, 10, 220, 90, 90, 90] + [0] * 756)
    return image


def mode_files(seed: int = 0) -> dict[str, bytes]:
    """One file per mode, name -> bytes; pixels vary with `seed` (no two alike)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (20, 24, 3), np.uint8)
    alpha = rng.integers(0, 256, (20, 24), np.uint8)
    alpha[:5] = 0  # A fully transparent band: its colour must never show.
    return {
        "rgb.jpg": encode(Image.fromarray(rgb), "JPEG"),
        "grey.jpg": encode(Image.fromarray(rgb[..., 0]), "JPEG"),
        "cmyk.jpg": encode(Image.fromarray(rgb).convert("CMYK"), "JPEG"),
        "rgb.png": encode(Image.fromarray(rgb), "PNG"),
        "rgba.png": encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG"),
        "grey_alpha.png": encode(Image.fromarray(np.dstack([rgb[..., 1], alpha]), "LA"), "PNG"),
        "palette_transparent.png": encode(_palette(seed), "PNG", transparency=0),
        "grey16.png": encode(Image.fromarray(rgb[..., 2].astype(np.uint16) * 257 + 100), "PNG"),
        "rgb16.png": _png16_rgb(rgb.astype(np.uint16) * 257 + 77),
        "palette_transparent.gif": encode(_palette(seed), "GIF", transparency=0),
        "animated_transparent.gif": encode(_palette(seed), "GIF", save_all=True, transparency=1,
                                           append_images=[_palette(seed + 1)]),
        "rgb.bmp": encode(Image.fromarray(rgb), "BMP"),
        "lossy.webp": encode(Image.fromarray(rgb), "WEBP", quality=80),
        "lossless_alpha.webp": encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "WEBP",
                                      lossless=True),
        "rgba.bmp": encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "BMP"),
    }


def oriented(pixels: np.ndarray, fmt: str, value: int, byte_order: str) -> bytes:
    """`pixels` stored as they are, in a JPEG (APP1) or PNG (eXIf) whose EXIF
    Orientation is `value`, written in byte order "MM" or "II"."""
    exif = Image.Exif()
    exif[0x0112] = value
    block = exif.tobytes()  # Pillow starts it with the APP1 header "Exif\0\0".
    if byte_order == "II":  # Pillow writes big-endian ("MM"); phones write both.
        block = b"Exif\0\0II*\0" + struct.pack("<IH", 8, 1) + struct.pack(
            "<HHIHH", 0x0112, 3, 1, value, 0) + b"\0\0\0\0"
    options = {"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}
    return encode(Image.fromarray(pixels), fmt, exif=block, **options)
