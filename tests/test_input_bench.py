"""The input benchmark's machinery at tiny scale: keys and positive figures, not speed."""

import json
import os

import pytest

from visiontrain.pipelines import input_bench


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
def test_bench_input_tiny(tmp_path, capsys):
    images = str(tmp_path / "images")
    input_bench.write_photo_like_jpegs(images, 40, size=(64, 48))
    result = input_bench.bench_input(
        images_dir=images, image_size=32, batch_size=8, repeats=1,
        work_dir=str(tmp_path), as_json=True,
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == result
    assert set(result["img_per_s"]) == set(input_bench.CONFIGS)
    assert all(v > 0 for v in result["img_per_s"].values())
    assert all(v > 0 for v in result["peak_rss_mb"].values())
    assert all(result[k] > 0 for k in ("R_ceiling", "R_naive", "R_keras"))
