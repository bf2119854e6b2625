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


def test_random_crop_window_is_the_same_for_every_format():
    """The JPEG branch (header shape, fused kernel) and the decode-then-slice branch agree."""
    seed = tf.constant([4, 7], tf.int64)

    def crop(encoded):
        return preprocess.decode_random_crop(encoded, seed, (0.08, 1.0), (0.75, 1.33), 1)

    shapes = set()
    for fmt in ("jpeg", "png"):
        eager, mapped = tfrun(crop, tf.constant(ENCODINGS[fmt]))
        np.testing.assert_array_equal(eager, mapped)
        shapes.add(eager.shape)
    (shape,) = shapes
    assert shape[2] == 3 and shape[:2] != (40, 60)
    png = crop(tf.constant(ENCODINGS["png"])).numpy()
    assert any(
        np.array_equal(png, IMAGE[y : y + shape[0], x : x + shape[1]])
        for y in range(40 - shape[0] + 1)
        for x in range(60 - shape[1] + 1)
    )


def test_fused_jpeg_crop_of_the_whole_image_equals_a_full_decode():
    encoded = tf.constant(ENCODINGS["jpeg"])
    whole = preprocess.decode_random_crop(encoded, tf.constant([0, 0], tf.int64), (1.0, 1.0),
                                          (1.5, 1.5), 1)
    np.testing.assert_array_equal(whole.numpy(), tf.io.decode_jpeg(encoded, 3).numpy())


def test_resize_uint8_rounds_and_keeps_the_range():
    image = np.array([[0, 255], [255, 0]], np.uint8)[:, :, None].repeat(3, axis=2)
    eager, mapped = tfrun(lambda x: preprocess.resize_uint8(x, 3), tf.constant(image))
    np.testing.assert_array_equal(eager, mapped)
    assert eager.dtype == np.uint8
    # Half-pixel centres: the corners keep their values, the centre is the mean (127.5 -> 128).
    assert eager[0, 0, 0] == 0 and eager[0, 2, 0] == 255 and eager[1, 1, 0] == 128


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
