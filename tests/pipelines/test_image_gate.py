"""The image gate: sniff, header dimensions, reject before decode, convert to RGB."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from visiontrain.pipelines import image_gate, preprocess

_OPTS = dict(keep_png=False, jpeg_quality=95, max_side=0, max_pixels=50_000_000)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def rgb(h=12, w=16, color=(200, 30, 40)) -> Image.Image:
    return Image.new("RGB", (w, h), color)


def decoded(prepared: image_gate.PreparedImage) -> Image.Image:
    image = Image.open(io.BytesIO(prepared.encoded))
    image.load()
    return image


def animated(fmt: str) -> bytes:
    frames = [rgb(color=(255, 0, 0)), rgb(color=(0, 0, 255))]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)


def huge_png_header() -> bytes:
    small = bytearray(encode(rgb(), "PNG"))
    small[16:24] = struct.pack(">II", 16000, 16000)
    return bytes(small)


@pytest.mark.parametrize(
    "fmt,expected", [("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"), ("BMP", "bmp")]
)
def test_inspect_reads_header_dimensions(fmt, expected):
    info = image_gate.inspect_bytes(encode(rgb(h=12, w=16), fmt))
    assert info == image_gate.ImageInfo(expected, 12, 16)


REJECTED = {
    "zero_byte": (b"", "empty"),
    "text": (b"hello, this is not an image\n", "unknown format"),
    "html": (b"<!DOCTYPE html><html><body>404</body></html>", "markup"),
    "animated_webp": (animated("WEBP"), "animated WebP.*TensorFlow cannot decode"),
    "tiff": (encode(rgb(), "TIFF"), "TIFF"),
    "truncated_jpeg": (encode(rgb(64, 64), "JPEG")[:300], "truncated JPEG"),
    "truncated_png": (encode(rgb(), "PNG")[:40], "truncated PNG"),
    "huge_png_header": (huge_png_header(), "max_pixels"),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_prepare_rejects_with_reason(name):
    data, reason = REJECTED[name]
    with pytest.raises(image_gate.RejectedImage, match=reason):
        image_gate.prepare(data, **_OPTS)


def test_truncated_jpeg_rejected_by_structure_even_when_pillow_would_pad():
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)),
                  "JPEG")
    with pytest.raises(image_gate.RejectedImage, match="end-of-image"):
        image_gate.inspect_bytes(data[: len(data) - 200])


def test_rgb_jpeg_passes_through_unchanged():
    data = encode(rgb(), "JPEG", quality=90)
    prepared = image_gate.prepare(data, **_OPTS)
    assert prepared.encoded == data and (prepared.height, prepared.width) == (12, 16)


def sixteen_bit_png() -> bytes:
    return encode(Image.fromarray(np.full((8, 8), 65535, np.uint16)), "PNG")


def palette_png() -> bytes:
    return encode(rgb().convert("P", palette=Image.Palette.ADAPTIVE), "PNG")


ACCEPTED = {
    # name: (bytes, stored format, kept as is, expected centre pixel within tolerance)
    "png_named_jpg": (encode(rgb(), "PNG"), "jpeg", False, (200, 30, 40)),
    "cmyk_jpeg": (encode(Image.new("CMYK", (16, 12), (0, 255, 255, 0)), "JPEG"), "jpeg", True,
                  (255, 0, 0)),
    "grayscale_jpeg": (encode(Image.new("L", (16, 12), 128), "JPEG"), "jpeg", True,
                       (128, 128, 128)),
    "sixteen_bit_png": (sixteen_bit_png(), "png", True, (255, 255, 255)),
    "palette_png": (palette_png(), "jpeg", False, (200, 30, 40)),
    "rgba_transparent_png": (encode(Image.new("RGBA", (16, 12), (0, 0, 0, 0)), "PNG"), "png",
                             True, (255, 255, 255)),
    "animated_gif_first_frame": (animated("GIF"), "jpeg", False, (255, 0, 0)),
    "bmp": (encode(rgb(), "BMP"), "jpeg", False, (200, 30, 40)),
    "lossless_webp": (encode(rgb(), "WEBP", lossless=True), "jpeg", False, (200, 30, 40)),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_prepare_stores_what_the_model_decodes_as_served(name):
    data, stored, kept, centre = ACCEPTED[name]
    prepared = image_gate.prepare(data, **_OPTS)
    assert prepared.format == stored and (prepared.encoded == data) == kept
    pixels = preprocess.decode_rgb(tf.constant(prepared.encoded)).numpy()
    assert pixels.shape == (prepared.height, prepared.width, 3)
    np.testing.assert_allclose(pixels[pixels.shape[0] // 2, pixels.shape[1] // 2], centre, atol=12)


def test_keep_png_stores_png_sources_as_they_are():
    prepared = image_gate.prepare(palette_png(), **{**_OPTS, "keep_png": True})
    assert prepared.format == "png" and prepared.encoded == palette_png()


def test_rotated_rgba_png_keeps_alpha_for_the_decoder():
    image = Image.new("RGBA", (16, 12), (0, 0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    prepared = image_gate.prepare(encode(image, "PNG", exif=exif), **_OPTS)
    assert prepared.format == "png" and (prepared.height, prepared.width) == (16, 12)
    assert decoded(prepared).mode == "RGBA"


def test_max_side_downscales_keeping_aspect():
    prepared = image_gate.prepare(encode(rgb(h=40, w=80), "JPEG"), **{**_OPTS, "max_side": 20})
    assert (prepared.height, prepared.width) == (10, 20)
    assert decoded(prepared).size == (20, 10)


def test_max_pixels_checked_from_header_before_decode():
    with pytest.raises(image_gate.RejectedImage, match="16000x16000"):
        image_gate.prepare(huge_png_header(), **_OPTS)
    with pytest.raises(image_gate.RejectedImage, match="max_pixels=100"):
        image_gate.prepare(encode(rgb(), "PNG"), **{**_OPTS, "max_pixels": 100})
