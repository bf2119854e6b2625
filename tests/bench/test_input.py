"""The input benchmark's machinery at tiny scale: keys and positive figures, not speed."""

import json
import os

import pytest

from visiontrain.bench import input as input_bench
from visiontrain.config import ConvertConfig


def test_photo_like_jpegs_are_jpegs_of_the_asked_size(tmp_path):
    from PIL import Image

    input_bench.write_photo_like_jpegs(str(tmp_path), 3, size=(50, 30))
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs)
    assert len(files) == 3
    with Image.open(files[0]) as image:
        assert image.format == "JPEG" and image.size == (50, 30)


def test_unknown_configuration_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown input benchmark configuration 'fast'"):
        input_bench._dataset("fast", str(tmp_path), str(tmp_path), 8, 2, 0)


@pytest.mark.slow
def test_bench_input_tiny(tmp_path):
    images = str(tmp_path / "images")
    input_bench.write_photo_like_jpegs(images, 40, size=(64, 48))
    result = input_bench.bench_input(
        images_dir=images, image_size=32, batch_size=8, repeats=2, min_images=60,
        work_dir=str(tmp_path),
    )
    for key in ("img_per_s", "steady_img_per_s", "first_batch_s", "peak_rss_mb"):
        assert set(result[key]) == set(input_bench.CONFIGS)
        assert all(v > 0 for v in result[key].values())
    assert all(result[k] > 0 for k in ("R_ceiling", "R_naive", "R_keras", "R_ceiling_steady"))
    assert result["num_images"] + 2 == 40 and result["rounds"] == 2
    json.dumps(result)


def test_run_config_times_whole_epochs_up_to_min_images(tmp_path):
    from visiontrain.pipelines import make_tfrecords

    images, shards = str(tmp_path / "images"), str(tmp_path / "shards")
    input_bench.write_photo_like_jpegs(images, 20, size=(40, 30))
    make_tfrecords.build(ConvertConfig(source=images, output=shards,
                                                      val_fraction=0.1, num_shards=2))
    # 18 training images in batches of 4: 4 batches (16 images) per epoch; 40 needs 3 epochs.
    figures = input_bench.run_config("ours", shards, images, 16, 4, 40)
    assert figures["epochs"] == 3 and figures["img_per_s"] > 0
