"""EXIF orientation read and applied in TF ops exactly as Pillow's exif_transpose shows it."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from tests.helpers.images import encode, oriented
from visiontrain.pipelines import exif, orientation, preprocess

PIXELS = np.random.default_rng(0).integers(0, 256, (6, 10, 3), np.uint8)
CASES = [(f, o, e) for f in ("JPEG", "PNG") for o in range(1, 9) for e in ("MM", "II")]


def pillow_upright(data: bytes) -> np.ndarray:
    """What a viewer shows: the stored pixels as TF decodes them, turned by Pillow."""
    stored = Image.fromarray(tf.io.decode_image(data, channels=3).numpy())
    stored.info["exif"] = Image.open(io.BytesIO(data)).info["exif"]
    return np.asarray(ImageOps.exif_transpose(stored))


@pytest.mark.parametrize("fmt,value,order", CASES)
def test_decode_rgb_turns_every_orientation_as_pillow_does(fmt, value, order):
    data = oriented(PIXELS, fmt, value, order)
    expected = pillow_upright(data)
    assert orientation.exif_orientation(tf.constant(data)).numpy() == value
    np.testing.assert_array_equal(preprocess.decode_rgb(tf.constant(data)), expected)
    mapped = tf.data.Dataset.from_tensors(data).map(preprocess.decode_rgb).get_single_element()
    np.testing.assert_array_equal(mapped, expected)
    if fmt == "PNG":  # Lossless: Pillow's own decode must agree to the level.
        upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        np.testing.assert_array_equal(expected, np.asarray(upright))


def with_app0(jpeg: bytes) -> bytes:
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return jpeg[:2] + app0 + jpeg[2:]


def png_with_app1_header(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    data = encode(Image.fromarray(PIXELS), "PNG", exif=b"Exif\0\0" + exif.tobytes())
    assert Image.open(io.BytesIO(data)).getexif()[0x0112] == value
    return data


@pytest.mark.parametrize("name,data,value", [
    ("after a JFIF APP0", with_app0(oriented(PIXELS, "JPEG", 6, "MM")), 6),
    ("PNG eXIf with an APP1 header", png_with_app1_header(6), 6),
    ("no EXIF", encode(Image.fromarray(PIXELS), "JPEG"), 1),
    ("PNG without eXIf", encode(Image.fromarray(PIXELS), "PNG"), 1),
    ("GIF", encode(Image.fromarray(PIXELS[..., 0]), "GIF"), 1),
    ("BMP", encode(Image.fromarray(PIXELS), "BMP"), 1),
    ("out of range", oriented(PIXELS, "JPEG", 9, "II"), 1),
    ("truncated inside the EXIF block", oriented(PIXELS, "JPEG", 6, "MM")[:30], 1),
    ("not an image", b"hello", 1),
    ("empty", b"", 1),
    ("fill bytes only", b"\xff\xd8" + b"\xff" * 5000, 1),
])
def test_orientation_of_odd_files_never_raises(name, data, value):
    assert orientation.exif_orientation(tf.constant(data)).numpy() == value, name
    assert exif.exif_orientation(data) == value, name


def mutants(count: int) -> list[bytes]:
    """Files with EXIF blocks whose bytes near the block are flipped or cut short."""
    rng = np.random.default_rng(1)
    bases = [oriented(PIXELS, fmt, int(rng.integers(1, 9)), order)
             for fmt in ("JPEG", "PNG") for order in ("MM", "II")]
    bases.append(with_app0(bases[0]))
    out = []
    for i in range(count):
        data = bytearray(bases[i % len(bases)])
        for pos in rng.integers(0, min(len(data), 120), size=int(rng.integers(1, 4))):
            data[pos] = int(rng.integers(0, 256))
        out.append(bytes(data[: int(rng.integers(20, len(data) + 1))]))
    return out


def test_the_converter_reads_every_orientation_as_serving_does():
    """`exif` (Python, recorded in shards) and `orientation` (TF, serving) agree byte for byte."""
    files = [oriented(PIXELS, f, o, e) for f, o, e in CASES] + mutants(400)
    served = tf.map_fn(orientation.exif_orientation, tf.constant(files), tf.int32).numpy()
    recorded = [exif.exif_orientation(f) for f in files]
    assert served.tolist() == recorded
    assert len(set(recorded)) == 8  # The mutants reach every value, not only 1.


@pytest.mark.parametrize("value", range(1, 9))
def test_stored_window_crops_the_same_pixels_as_cropping_the_upright_image(value):
    stored = tf.constant(PIXELS)
    turn = tf.constant(value)
    upright = orientation.orient(stored, turn)
    window = tf.constant([1, 2, 3, 4])  # y, x, h, w in the upright frame.
    y, x, h, w = window.numpy()
    raw = orientation.stored_window(window, tf.shape(stored)[:2], turn).numpy()
    crop = orientation.orient(stored[raw[0]:raw[0] + raw[2], raw[1]:raw[1] + raw[3]], turn)
    np.testing.assert_array_equal(crop, upright[y:y + h, x:x + w])


@pytest.mark.parametrize("value", [1, 3, 6, 8])
def test_training_crop_of_a_rotated_jpeg_is_the_crop_of_its_upright_pixels(value):
    # 4:4:4 chroma makes the fused decode-and-crop equal to decoding whole then cropping.
    data = tf.constant(oriented(np.kron(PIXELS, np.ones((4, 4, 1), np.uint8)), "JPEG", value, "MM"))
    seed, turn = tf.constant([3, 4]), orientation.exif_orientation(data)
    upright = preprocess.decode_rgb(data)
    window = preprocess.random_crop_window(tf.shape(upright)[:2], seed, (0.2, 1.0), (0.75, 1.33))
    y, x, h, w = window.numpy()
    crop = preprocess.decode_random_crop(data, seed, (0.2, 1.0), (0.75, 1.33), turn)
    np.testing.assert_array_equal(orientation.orient(crop, turn), upright[y:y + h, x:x + w])


@pytest.mark.parametrize("value", [1, 6])
def test_training_preprocess_reads_the_bytes_unless_given_the_orientation(value):
    data = tf.constant(oriented(np.kron(PIXELS, np.ones((4, 4, 1), np.uint8)), "JPEG", value, "MM"))
    seed = tf.constant([3, 4])

    def train(turn=None):
        return preprocess.preprocess_for_train(data, seed, 8, (1.0, 1.0), (1.0, 1.0), turn)

    np.testing.assert_array_equal(train(), train(tf.constant(value)))
    assert value == 1 or not np.array_equal(train(), train(tf.constant(1)))
