import io
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from visiontrain.serving import request_checks

IMAGE = np.zeros((5, 7, 3), np.uint8)
PNG = tf.io.encode_png(IMAGE).numpy()
JPEG = tf.io.encode_jpeg(IMAGE).numpy()
GIF = b"GIF89a" + struct.pack("<HH", 9, 4) + b"\0" * 20
BMP = b"BM" + b"\0" * 16 + struct.pack("<ii", 6, -3) + b"\0" * 10
HUGE_PNG = PNG[:16] + struct.pack(">II", 16000, 16000) + PNG[24:]


def test_header_pixels_eager_and_in_dataset_map():
    batch = [PNG, JPEG, GIF, BMP, b"xx", HUGE_PNG]
    known, pixels = request_checks.header_pixels(tf.constant(batch))
    assert known.numpy().tolist() == [True, True, True, True, False, True]
    assert pixels.numpy().tolist() == [35, 35, 36, 18, 0, 256_000_000]
    mapped = tf.data.Dataset.from_tensors(tf.constant(batch)).map(
        lambda e: request_checks.header_pixels(e)[1])
    np.testing.assert_array_equal(next(iter(mapped)), pixels)


def test_good_and_garbage_batch_is_invalid_argument_naming_the_index():
    check = tf.function(lambda e: request_checks.check_encoded(e, 1000, "image_bytes"))
    assert check(tf.constant([PNG, JPEG])).shape == (2,)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"index\] \[1\].*not JPEG, PNG"):
        check(tf.constant([PNG, b"garbage"]))


def test_huge_header_rejected_before_decoding():
    check = tf.function(lambda e: request_checks.check_encoded(e, 1000, "image_bytes"))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"256000000.*limit is 1 to 1000"):
        check(tf.constant([HUGE_PNG]))


def test_decoded_images_pixel_limit():
    check = tf.function(lambda x: request_checks.check_decoded(x, 30))
    assert check(tf.zeros([2, 5, 6, 3], tf.uint8)).shape == (2, 5, 6, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="1 to 30 pixels"):
        check(tf.zeros([1, 6, 6, 3], tf.uint8))


def test_truncated_files_are_named_by_index_before_any_decoder_runs():
    rng = np.random.default_rng(0)
    jpeg = tf.io.encode_jpeg(rng.integers(0, 255, (32, 32, 3), np.uint8)).numpy()
    cut = [jpeg[: len(jpeg) // 2], PNG[:-12], jpeg[:-2]]
    truncated = request_checks.truncated(tf.constant([jpeg, PNG, GIF + b";", *cut]))
    assert truncated.numpy().tolist() == [False, False, False, True, True, True]
    check = tf.function(lambda e: request_checks.check_encoded(e, 10_000, "image_bytes"))
    for bad in cut:
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"index\] \[1\].*truncated"):
            check(tf.constant([jpeg, bad]))


def test_webp_is_read_and_an_animated_one_refused_by_index():
    frames = [Image.fromarray(np.full((6, 5, 3), v, np.uint8)) for v in (10, 200)]
    buffers = [io.BytesIO(), io.BytesIO()]
    frames[0].save(buffers[0], "WEBP", lossless=True)
    frames[0].save(buffers[1], "WEBP", save_all=True, append_images=frames[1:])
    still, animated = (b.getvalue() for b in buffers)
    known, pixels = request_checks.header_pixels(tf.constant([still, animated]))
    assert known.numpy().tolist() == [True, True] and pixels.numpy().tolist() == [30, 30]
    check = tf.function(lambda e: request_checks.check_encoded(e, 1000, "image_bytes"))
    assert check(tf.constant([still])).shape == (1,)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"index\] \[1\].*animated WebP"):
        check(tf.constant([still, animated]))
    truncated = still[:-4]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"index\] \[0\].*truncated"):
        check(tf.constant([truncated]))
