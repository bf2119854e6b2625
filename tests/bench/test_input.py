"""The input benchmark's machinery at tiny scale: keys and positive figures, not speed."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from visiontrain.bench import input as input_bench
from visiontrain.bench import input_peers as peers
from visiontrain.config import ConvertConfig
from visiontrain.pipelines import record_sources


def test_photo_like_jpegs_are_jpegs_of_the_asked_size(tmp_path):
    from PIL import Image

    input_bench.write_photo_like_jpegs(str(tmp_path), 3, size=(50, 30))
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs)
    assert len(files) == 3
    with Image.open(files[0]) as image:
        assert image.format == "JPEG" and image.size == (50, 30)


def test_unknown_configuration_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown input benchmark configuration 'fast'"):
        input_bench._dataset("fast", str(tmp_path), str(tmp_path), 8, 2, 0, 1)


@pytest.mark.slow
def test_bench_input_tiny(tmp_path):
    # One round: the harness tests cover pairing over rounds (tests/bench/test_harness.py).
    images = str(tmp_path / "images")
    input_bench.write_photo_like_jpegs(images, 40, size=(64, 48))
    result = input_bench.bench_input(
        images_dir=images, image_size=32, batch_size=8, repeats=1, min_images=60,
        work_dir=str(tmp_path),
    )
    assert set(result["configs"]) == set(input_bench.CONFIGS) | set(peers.available())
    for key in ("img_per_s", "steady_img_per_s", "first_batch_s", "peak_rss_mb"):
        assert set(result[key]) == set(result["configs"])
        assert all(v > 0 for v in result[key].values())
    ratios = ["R_ceiling", "R_ceiling_flip", "R_naive", "R_keras"] + (
        ["R_dali"] if "dali" in result["configs"] else [])
    assert all(result[k] > 0 and result[k + "_steady"] > 0 for k in ratios)
    assert result["num_images"] + 2 == 40 and result["rounds"] == 1
    json.dumps(result)


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory):
    from visiontrain.pipelines import make_tfrecords

    tmp_path = tmp_path_factory.mktemp("bench")
    images, shards = str(tmp_path / "images"), str(tmp_path / "shards")
    input_bench.write_photo_like_jpegs(images, 20, size=(40, 30))
    make_tfrecords.build(ConvertConfig(source=images, output=shards,
                                       val_fraction=0.1, num_shards=2))
    return images, shards


@pytest.mark.parametrize("name", ["ours", "ours_flip"])
def test_run_config_times_whole_epochs_up_to_min_images(tiny_shards, name):
    images, shards = tiny_shards
    # 18 training images in batches of 4: 4 batches (16 images) per epoch; 40 needs 3 epochs.
    figures = input_bench.run_config(name, shards, images, 16, 4, 40)
    assert figures["epochs"] == 3 and figures["img_per_s"] > 0
    assert figures["steady_img_per_s"] > 0 and figures["first_batch_s"] > 0


def test_training_flip_flips_each_image_or_leaves_it():
    flip = input_bench._training_flip("ours_flip")
    images = tf.constant(np.random.default_rng(0).integers(0, 256, (8, 4, 5, 3), np.uint8))
    out = flip(images, tf.zeros([8], tf.int32), 3).numpy()
    original = images.numpy().astype(np.float32)
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, original)]
    assert all(f or np.array_equal(o, i) for f, o, i in zip(flipped, out, original))
    assert 0 < sum(flipped) < 8
    assert input_bench._training_flip("ours") is None


def test_dali_index_lists_every_record(tiny_shards):
    _, shards = tiny_shards
    shard = record_sources.ShardSource(shards).files("train")[0]
    index = shard.path + ".test_idx"
    peers.write_dali_index(shard.path, index)
    lines = [tuple(map(int, line.split())) for line in open(index)]
    assert len(lines) == shard.records
    assert lines[0][0] == 0 and sum(size for _, size in lines) == os.path.getsize(shard.path)
    assert all(a + size == b for (a, size), (b, _) in zip(lines, lines[1:]))


def test_dali_peer_reads_whole_batches_when_installed(tiny_shards):
    pytest.importorskip("nvidia.dali")
    _, shards = tiny_shards
    batches = list(peers.dali_batches(shards, 16, 4, 0, 2))
    assert len(batches) == 2 * (18 // 4)
    assert all(images.shape == (4, 16, 16, 3) and images.dtype == np.float32
               for images, _ in batches)
