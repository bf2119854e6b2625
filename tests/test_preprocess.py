"""Preprocessing ops, each run eagerly and inside Dataset.map (the two can differ)."""

import numpy as np
import pytest
import tensorflow as tf

from visiontrain.pipelines import preprocess

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8)
ENCODINGS = {
    "jpeg": tf.io.encode_jpeg(IMAGE).numpy(),
    "png": tf.io.encode_png(IMAGE).numpy(),
    "bmp": bytes(),  # filled below
}


def _bmp(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="BMP")
    return out.getvalue()


ENCODINGS["bmp"] = _bmp(IMAGE)


def tfrun(fn, *args):
    """(eager result, result of the same fn inside Dataset.map)."""
    eager = fn(*args)
    mapped = next(iter(tf.data.Dataset.from_tensors(args).map(fn)))
    return eager.numpy(), mapped.numpy()


@pytest.mark.parametrize("fmt", sorted(ENCODINGS))
def test_eval_shape_dtype_and_map_agree(fmt):
    eager, mapped = tfrun(
        lambda e: preprocess.preprocess_for_eval(e, 16, 0.875), tf.constant(ENCODINGS[fmt])
    )
    assert eager.shape == (16, 16, 3) and eager.dtype == np.uint8
    np.testing.assert_array_equal(eager, mapped)


def test_eval_of_lossless_formats_matches_direct_crop_and_resize():
    """PNG and BMP give exactly the centre crop of the original pixels, resized."""
    side = 35  # round(0.875 * 40)
    top, left = (40 - side) // 2, (60 - side) // 2
    expected = preprocess.resize_uint8(IMAGE[top : top + side, left : left + side], 16).numpy()
    for fmt in ("png", "bmp"):
        got = preprocess.preprocess_for_eval(tf.constant(ENCODINGS[fmt]), 16, 0.875).numpy()
        np.testing.assert_array_equal(got, expected)


def test_fused_jpeg_crop_covers_the_window():
    window = preprocess.center_crop_window(tf.constant([40, 60]), 0.6)
    fused = preprocess.decode_and_crop(tf.constant(ENCODINGS["jpeg"]), window).numpy()
    assert fused.shape == (24, 24, 3)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_decoded_path_equals_encoded_path(fmt):
    """predict_images (decoded input) and serving_default (bytes) see the same pixels."""
    pixels = tf.io.decode_image(ENCODINGS[fmt], channels=3).numpy()
    encoded = preprocess.preprocess_for_eval(tf.constant(ENCODINGS[fmt]), 16, 0.875)
    decoded = preprocess.preprocess_decoded_for_eval(tf.constant(pixels[None]), 16, 0.875)
    np.testing.assert_array_equal(encoded.numpy(), decoded.numpy()[0])


def test_gif_first_frame_is_used():
    import io

    from PIL import Image

    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 200)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    image = preprocess.preprocess_for_eval(tf.constant(out.getvalue()), 8, 1.0).numpy()
    assert image.shape == (8, 8, 3) and abs(int(image.mean()) - 10) <= 2


def test_train_crop_is_seeded_and_varies_with_seed():
    encoded = tf.constant(ENCODINGS["jpeg"])

    def crop(seed):
        return preprocess.preprocess_for_train(encoded, seed, 16, (0.08, 1.0), (0.75, 1.33))

    a, a_mapped = tfrun(crop, tf.constant([1, 2], tf.int64))
    b = crop(tf.constant([1, 3], tf.int64)).numpy()
    assert a.shape == (16, 16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, a_mapped)
    assert not np.array_equal(a, b)


def test_train_crop_with_full_area_keeps_whole_image():
    encoded = tf.constant(ENCODINGS["png"])
    got = preprocess.preprocess_for_train(
        encoded, tf.constant([0, 0], tf.int64), 16, (1.0, 1.0), (1.5, 1.5)
    ).numpy()
    np.testing.assert_array_equal(got, preprocess.resize_uint8(IMAGE, 16).numpy())
