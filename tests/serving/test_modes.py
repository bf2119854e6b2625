"""Every image mode reaches the model the same way through the converter and every signature."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.helpers.images import mode_files, oriented
from tests.pipelines.test_orientation import pillow_upright
from visiontrain.config import ConvertConfig, ModelConfig
from visiontrain.models.registry import build_model
from visiontrain.pipelines import make_tfrecords, preprocess, schema
from visiontrain.serving import signatures

SIZE = 16


@pytest.fixture(scope="module")
def model():
    return build_model(ModelConfig(name="small_cnn", num_classes=2), SIZE)


def stored_records(tmp_path, keep_png: bool, files=mode_files, **options) -> dict[str, dict]:
    """Builds shards from `files(seed)` in two classes; file name -> parsed record."""
    for c, name in enumerate(("a", "b")):
        os.makedirs(tmp_path / "src" / name)
        for file, data in files(seed=c).items():
            (tmp_path / "src" / name / file).write_bytes(data)
    cfg = ConvertConfig(source=str(tmp_path / "src"), output=str(tmp_path / "out"),
                        num_workers=1, keep_png=keep_png, val_fraction=0.5, **options)
    result = make_tfrecords.build(cfg)
    stored = {}
    for split in result["splits"].values():
        for shard in split["shards"]:
            for record in tf.data.TFRecordDataset(os.path.join(cfg.output, shard["file"])):
                features = schema.parse_example(record)
                stored[features[schema.FILENAME].numpy().decode()] = features
    return stored


def example(encoded: bytes) -> bytes:
    feature = {schema.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


# Stored losslessly even with --nokeep_png: as they are (their mode decided only by
# decode_rgb), or as RGBA PNG (GIF transparency, composited over white like the GIF).
EXACT = ("rgb.jpg", "grey.jpg", "cmyk.jpg", "rgba.png", "grey_alpha.png",
         "palette_transparent.png", "grey16.png", "rgb16.png", "palette_transparent.gif",
         "animated_transparent.gif", "lossless_alpha.webp")


@pytest.mark.parametrize("keep_png", [True, False])
def test_converter_reader_and_every_signature_agree_per_mode(tmp_path, model, keep_png):
    stored = stored_records(tmp_path, keep_png)
    _, endpoints = signatures.build_archive(model, ["a", "b"], SIZE, 1.0, 2, 10**6)
    names = [n for n in stored if keep_png or os.path.basename(n) in EXACT]
    assert len(names) == (30 if keep_png else 22)
    for name in names:
        raw = (tmp_path / "src" / name).read_bytes()
        trained = preprocess.preprocess_for_eval(stored[name][schema.ENCODED], SIZE, 1.0)
        served = preprocess.preprocess_for_eval(tf.constant(raw), SIZE, 1.0)
        np.testing.assert_array_equal(trained, served, err_msg=name)
        expected = tf.nn.softmax(model(tf.cast(trained[None], tf.float32), training=False))
        outputs = {
            "serving_default": endpoints["serving_default"](tf.constant([raw])),
            "predict_tf_example": endpoints["predict_tf_example"](tf.constant([example(raw)])),
            "predict_images": endpoints["predict_images"](preprocess.decode_rgb(raw)[None]),
        }
        for signature, out in outputs.items():
            np.testing.assert_allclose(out["probabilities"], expected, atol=1e-6,
                                       err_msg=f"{name} via {signature}")


def test_transparent_pixels_reach_the_model_as_white():
    for name in ("rgba.png", "grey_alpha.png"):
        pixels = preprocess.decode_rgb(tf.constant(mode_files()[name])).numpy()
        assert (pixels[:5] == 255).all(), name
    for name, index in (("palette_transparent.gif", 0), ("animated_transparent.gif", 1)):
        data = mode_files()[name]
        transparent = np.asarray(Image.open(io.BytesIO(data))) == index
        pixels = preprocess.decode_rgb(tf.constant(data)).numpy()
        assert transparent.any() and (pixels[transparent] == 255).all(), name
        assert (pixels[~transparent] != 255).any(axis=-1).all(), name  # The rest stays.


def oriented_files(seed: int) -> dict[str, bytes]:
    """A photo in all eight EXIF orientations, as JPEG (APP1) and PNG (eXIf)."""
    blocks = np.random.default_rng(seed).integers(0, 256, (3, 5, 3), np.uint8)
    pixels = np.kron(blocks, np.ones((4, 4, 1), np.uint8))  # Smooth enough to downscale.
    return {f"o{value}_{order}.{ext}": oriented(pixels, fmt, value, order)
            for value in range(1, 9) for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"))
            for order in ("MM", "II")}


def test_every_orientation_is_trained_and_served_upright(tmp_path, model):
    stored = stored_records(tmp_path, keep_png=True, files=oriented_files)
    _, endpoints = signatures.build_archive(model, ["a", "b"], SIZE, 1.0, 2, 10**6)
    assert len(stored) == 64
    for name, record in stored.items():
        raw = (tmp_path / "src" / name).read_bytes()
        data, turn = record[schema.ENCODED], tf.cast(record[schema.ORIENTATION], tf.int32)
        # Recorded by the converter, read by the reader: "a/o6_MM.jpg" holds orientation 6.
        assert turn == int(os.path.basename(name)[1]), name
        np.testing.assert_array_equal(preprocess.decode_rgb(data, turn), pillow_upright(raw), name)
        trained = preprocess.preprocess_for_eval(data, SIZE, 1.0, turn)
        expected = tf.nn.softmax(model(tf.cast(trained[None], tf.float32), training=False))
        served = endpoints["serving_default"](tf.constant([raw]))["probabilities"]
        np.testing.assert_allclose(served, expected, atol=1e-6, err_msg=name)


def test_a_downscaled_rotated_photo_is_stored_upright(tmp_path):
    stored = stored_records(tmp_path, keep_png=False, files=oriented_files, max_side=10)
    for name, record in stored.items():
        upright = pillow_upright((tmp_path / "src" / name).read_bytes())
        pixels = preprocess.decode_rgb(record[schema.ENCODED]).numpy()
        assert record[schema.ORIENTATION] == int(os.path.basename(name)[1]), name
        assert pixels.shape[:2] == (upright.shape[0] // 2, upright.shape[1] // 2), name
        expected = Image.fromarray(upright).resize(pixels.shape[1::-1], Image.Resampling.BOX)
        difference = np.abs(pixels.astype(int) - np.asarray(expected)).mean()
        # Resampling and JPEG at 6x10 pixels leave ~20 levels; a wrong turn leaves ~78.
        assert difference < 40, (name, difference)
