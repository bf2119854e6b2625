"""The gate every source image passes before anything decodes it.

Measured on TF 2.21: an animated WebP decoded for "any" channels aborts the whole
process (exit 134), and a PNG of 0.75 MB can decode to 768 MB. So the format is
sniffed from magic bytes and the dimensions are read from the header first; only
JPEG, PNG, GIF, BMP and WebP that fit under `max_pixels` reach a decoder, and that
decoder is Pillow (in-process, raises instead of aborting), never TF. Shards hold
JPEG and PNG only: GIF, BMP and WebP are stored as PNG (or JPEG with --nokeep_png),
from Pillow's pixels, which equal TF's (tests/serving/test_modes.py).

This module deliberately does not import TensorFlow: it runs in the converter's
worker processes.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import warnings

import numpy as np
from PIL import Image

from visiontrain.pipelines import exif, formats

# JPEG start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC)
# share the range but are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}


class RejectedImage(ValueError):
    """An input that must not reach a decoder; `reason` says why, for the manifest."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What the header says: `format` is one of `formats.NAMES`."""

    format: str
    height: int
    width: int


@dataclasses.dataclass(frozen=True)
class PreparedImage:
    """An image encoded as `format`, ready for a shard: its size as shown, after the
    EXIF `orientation` its bytes carry."""

    encoded: bytes
    format: str
    height: int
    width: int
    orientation: int


def _jpeg_info(data: bytes) -> ImageInfo:
    pos, size = 2, None
    while pos < len(data):
        if data[pos] != 0xFF:
            raise RejectedImage(f"corrupt JPEG: no marker at byte {pos}")
        while pos < len(data) and data[pos] == 0xFF:
            pos += 1
        if pos >= len(data):
            break
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9:
            break
        if pos + 2 > len(data):
            break
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2 or pos + length > len(data):
            raise RejectedImage(f"truncated JPEG: segment 0x{marker:02X} runs past the end")
        if marker in _JPEG_SOF:
            if length < 7:
                raise RejectedImage("corrupt JPEG: short frame header")
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            size = (height, width)
        if marker == 0xDA:
            # Entropy-coded data follows; what matters now is that the file ends.
            if size is None:
                raise RejectedImage("corrupt JPEG: scan before any frame header")
            if data.rfind(b"\xff\xd9", pos + length) < 0:
                raise RejectedImage("truncated JPEG: no end-of-image marker after the scan")
            return ImageInfo("jpeg", *size)
        pos += length
    raise RejectedImage("truncated JPEG: ends before the first scan")


def _png_info(data: bytes) -> ImageInfo:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise RejectedImage("truncated PNG: no IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    if data.rfind(b"IEND") < 0:
        raise RejectedImage("truncated PNG: no IEND chunk")
    return ImageInfo("png", height, width)


def _gif_info(data: bytes) -> ImageInfo:
    if len(data) < 13:
        raise RejectedImage("truncated GIF: no logical screen descriptor")
    width, height = struct.unpack("<HH", data[6:10])
    if b";" not in data[-16:]:
        raise RejectedImage("truncated GIF: no trailer byte")
    return ImageInfo("gif", height, width)


def _bmp_info(data: bytes) -> ImageInfo:
    if len(data) < 26:
        raise RejectedImage("truncated BMP: no DIB header")
    (declared,) = struct.unpack("<I", data[2:6])
    if declared and len(data) < declared:
        raise RejectedImage(f"truncated BMP: {len(data)} bytes, header declares {declared}")
    (dib_size,) = struct.unpack("<I", data[14:18])
    if dib_size == 12:
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return ImageInfo("bmp", abs(height), abs(width))


def _webp_info(data: bytes) -> ImageInfo:
    if len(data) < 30:
        raise RejectedImage("truncated WebP: no image header")
    (declared,) = struct.unpack("<I", data[4:8])
    if len(data) < declared + 8:
        raise RejectedImage(f"truncated WebP: {len(data)} bytes, header declares {declared + 8}")
    chunk = data[12:16]
    if chunk == b"VP8X" and data[20] & 0x02:
        raise RejectedImage(
            "animated WebP: TensorFlow cannot decode it, so it could not be served either; "
            "convert its first frame (python -c \"from PIL import Image; "
            "Image.open('IN.webp').save('OUT.png')\")")
    if chunk == b"VP8X":  # canvas size, 24 bits each, minus one
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif chunk == b"VP8L":  # 14 bits each, minus one, after the signature byte
        (bits,) = struct.unpack("<I", data[21:25])
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif chunk == b"VP8 ":  # after the frame tag and start code, 14 bits each
        width, height = (v & 0x3FFF for v in struct.unpack("<HH", data[26:30]))
    else:
        raise RejectedImage(f"corrupt WebP: unknown first chunk {chunk!r}")
    return ImageInfo("webp", height, width)


_HEADER_READERS = {"jpeg": _jpeg_info, "png": _png_info, "gif": _gif_info, "bmp": _bmp_info,
                   "webp": _webp_info}


def _unsupported_reason(data: bytes) -> str:
    if not data:
        return "empty file"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF is not supported; convert it to PNG or JPEG"
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<svg")):
        return "markup (HTML/XML/SVG), not an image"
    if data[:2] == b"\xff\xd8":
        return "truncated JPEG: stops inside the start marker"
    return f"unknown format (first bytes {data[:8].hex()})"


def inspect_bytes(data: bytes) -> ImageInfo:
    """Sniffs the format from magic bytes and reads dimensions from the header only.

    Args:
      data: the whole file.

    Returns:
      The format and header dimensions.

    Raises:
      RejectedImage: the format is not JPEG/PNG/GIF/BMP, or the file is truncated
        or structurally corrupt, or the header gives a zero dimension.
    """
    image_format = formats.sniff(data)
    if image_format is None:
        raise RejectedImage(_unsupported_reason(data))
    info = _HEADER_READERS[image_format](data)
    if info.height <= 0 or info.width <= 0:
        raise RejectedImage(f"{info.format} header gives size {info.height}x{info.width}")
    return info


_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "F")


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def _png_is_wide(data: bytes) -> bool:
    # IHDR bit depth; Pillow opens 16-bit colour PNGs as 8-bit "RGB", hiding it.
    return len(data) > 24 and data[24] == 16


def _keeps_original(info: ImageInfo, image: Image.Image, data: bytes, keep_png: bool) -> bool:
    """Whether the source bytes go into the shard as they are (no transform needed).

    Kept bytes reach the model through `preprocess.decode_rgb` in training exactly as
    in serving, which is how every mode (alpha, palette transparency, 16 bits, grey,
    CMYK, orientation) is decided in one place. A PNG that carries more than 8-bit
    RGB is kept even without `keep_png`: a JPEG would have to decide its alpha here
    instead. A GIF never is: an animated one would be decoded whole to show its first
    frame, and readers of shards skip GIF handling (`record_sources.ShardSource`).
    """
    if info.format == "jpeg":
        return True
    if info.format != "png":
        return False
    return keep_png or _has_alpha(image) or _png_is_wide(data)


def _to_8bit(image: Image.Image) -> Image.Image:
    # Pillow's own conversion clips 16-bit values at 255 instead of scaling; this is
    # the scaling `preprocess.decode_rgb` applies (round(v / 257)).
    values = np.asarray(image, dtype=np.float64)
    scale = 1.0 if image.mode == "F" and values.max() <= 1.0 else 257.0
    return Image.fromarray(np.clip(np.rint(values / scale), 0, 255).astype(np.uint8), "L")


def _for_shard(image: Image.Image, source_format: str) -> Image.Image:
    """The mode the shard stores: RGB, or RGBA for a source that carries alpha.

    Each choice matches what `preprocess.decode_rgb` does with the original file, so
    a transformed image (rotated, downscaled) still reaches the model as served.
    """
    if image.mode in _WIDE_MODES:
        return _to_8bit(image).convert("RGB")
    if source_format in ("png", "gif", "webp") and _has_alpha(image):
        # Composited over white when read, as the served PNG, GIF
        # (`gif.opaque_over_white`) and WebP (`preprocess._decode_webp`) are.
        return image.convert("RGBA")
    # BMP alpha bytes are dropped, as TF's BMP decoder with 3 channels does.
    return image.convert("RGB")


def _decode(data: bytes, info: ImageInfo) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # The header check against max_pixels already ran; Pillow's own bomb
            # limit would otherwise second-guess a caller who raised it. (The
            # converter's threads share the filter list: a race can at worst let the
            # warning print, it cannot change a result.)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.seek(0)
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise RejectedImage(f"{info.format} does not decode: {err}") from err
    return image


def check_decodes(data: bytes) -> ImageInfo:
    """Gates and fully decodes `data` (first frame), raising RejectedImage on failure."""
    info = inspect_bytes(data)
    _decode(data, info)
    return info


def _check_pixels(info: ImageInfo, max_pixels: int) -> None:
    if info.height * info.width > max_pixels:
        raise RejectedImage(
            f"{info.format} header says {info.width}x{info.height} = "
            f"{info.height * info.width} pixels, above --max_pixels={max_pixels}"
        )


def check(data: bytes, max_pixels: int) -> ImageInfo:
    """The whole gate, as `prepare` applies it, without encoding anything.

    The converter runs it on every file before writing any shard, so `--strict`
    and the "pass the gate" count know every rejection in advance.

    Raises:
      RejectedImage: see `prepare`.
    """
    info = inspect_bytes(data)
    _check_pixels(info, max_pixels)
    _decode(data, info)
    return info


def _encode(image: Image.Image, image_format: str, jpeg_quality: int, orientation: int) -> bytes:
    # The stored pixels stay in the source's frame and the tag goes with them, so
    # `preprocess.decode_rgb` turns them exactly as it turns the served original.
    tags = Image.Exif()
    if orientation != 1:
        tags[exif.ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.save(buffer, "JPEG", quality=jpeg_quality, exif=tags)
    else:
        image.save(buffer, "PNG", exif=tags)
    return buffer.getvalue()


def prepare(
    data: bytes, *, keep_png: bool, jpeg_quality: int, max_side: int, max_pixels: int
) -> PreparedImage:
    """Gates, decodes and, where it must, re-encodes one source image for a shard.

    A JPEG, and a PNG (any PNG with `keep_png`; else one with alpha or 16 bits),
    that needs no downscale keeps its original bytes, EXIF orientation included:
    no second generation of JPEG loss, and its pixels are decided by
    `preprocess.decode_rgb` as when served. A re-encoded image keeps the source's
    frame and orientation tag for the same reason: the converter never turns
    pixels itself.

    Args:
      data: the whole source file.
      keep_png: non-JPEG sources become PNG instead of JPEG.
      jpeg_quality: quality of re-encoded JPEGs, 1-100.
      max_side: downscale so the longer side is at most this; 0 keeps the size.
      max_pixels: reject when the header's height * width is larger.

    Returns:
      The encoded image (RGB, or RGBA PNG) and its dimensions as shown (upright).

    Raises:
      RejectedImage: see `inspect_bytes`, plus too many pixels or a failed decode.
    """
    info = inspect_bytes(data)
    _check_pixels(info, max_pixels)
    image = _decode(data, info)
    orientation = exif.exif_orientation(data)
    too_big = max_side > 0 and max(image.size) > max_side
    if too_big or not _keeps_original(info, image, data, keep_png):
        image = _for_shard(image, info.format)
        if too_big:
            ratio = max_side / max(image.size)
            size = (max(1, round(image.width * ratio)), max(1, round(image.height * ratio)))
            image = image.resize(size, Image.Resampling.LANCZOS)
        lossless = image.mode == "RGBA" or (keep_png and info.format != "jpeg")
        info = dataclasses.replace(info, format="png" if lossless else "jpeg")
        data = _encode(image, info.format, jpeg_quality, orientation)
    width, height = image.size
    if orientation >= 5:  # The transposing orientations show the stored width as height.
        width, height = height, width
    return PreparedImage(data, info.format, height, width, orientation)
