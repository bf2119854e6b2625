"""The converter: counts, readback, mixing, split, duplicates, verify, resume, TFDS."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from tests.helpers.trees import CLASSES, config, make_tree, write_image
from visiontrain import fileio
from visiontrain.pipelines import make_tfrecords, manifest, schema


def read_split(out_dir, result, split) -> list[dict]:
    rows = []
    for shard in result["splits"][split]["shards"]:
        for record in tf.data.TFRecordDataset(os.path.join(out_dir, shard["file"])):
            f = schema.parse_example(record)
            rows.append({"shard": shard["file"], "file": f[schema.FILENAME].numpy().decode(),
                         "label": int(f[schema.LABEL]), "text": f[schema.TEXT].numpy().decode()})
    return rows


def test_build_counts_readback_mixing_and_split(tmp_path):
    make_tree(tmp_path / "src")
    result = make_tfrecords.build(config(tmp_path, num_shards=3))
    out = str(tmp_path / "out")
    assert result["labels"] == list(CLASSES) and result["num_classes"] == 3
    with open(os.path.join(out, schema.LABELS_FILE)) as f:
        assert json.load(f) == list(CLASSES)
    rows = {s: read_split(out, result, s) for s in ("train", "validation")}
    found = {os.path.join(c, n) for c in CLASSES for n in os.listdir(tmp_path / "src" / c)}
    written = [r["file"] for s in rows.values() for r in s]
    assert sorted(written) == sorted(found) and result["skipped"] == []
    for split, split_rows in rows.items():
        assert result["splits"][split]["num_records"] == len(split_rows)
        for row in split_rows:
            assert CLASSES[row["label"]] == row["text"] == row["file"].split("/")[0]
    # Stratified: 10% of each class of 40 goes to validation; no image in both.
    assert result["splits"]["validation"]["class_counts"] == {c: 4 for c in CLASSES}
    assert not {r["file"] for r in rows["train"]} & {r["file"] for r in rows["validation"]}
    for shard in result["splits"]["train"]["shards"]:
        labels = {r["label"] for r in rows["train"] if r["shard"] == shard["file"]}
        assert labels == {0, 1, 2}, shard["file"]
    assert manifest.verify_split(out, result, "train", True, decode_images=True) == []


def test_split_is_seeded(tmp_path):
    make_tree(tmp_path / "src", per_class=20)

    def validation_files(seed, out):
        result = make_tfrecords.build(config(tmp_path, seed=seed, output=str(tmp_path / out)))
        return sorted(r["file"] for r in read_split(tmp_path / out, result, "validation"))

    assert validation_files(0, "a") == validation_files(0, "b")
    assert validation_files(0, "a") != validation_files(1, "c")


def test_bad_files_are_skipped_with_reasons_and_strict_fails(tmp_path):
    make_tree(tmp_path / "src", per_class=6)
    bad = {"ant/text.jpg": b"not an image", "bee/empty.jpg": b"",
           "cow/cut.jpg": open(tmp_path / "src/cow/001.jpeg", "rb").read()[:200]}
    for name, data in bad.items():
        (tmp_path / "src" / name).write_bytes(data)
    # Animated WebP aborts tf.io.decode_image; the gate must stop it before any decoder.
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=50)
    (tmp_path / "src/ant/anim.webp").write_bytes(buffer.getvalue())
    buffer = io.BytesIO()
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(buffer, "JPEG")
    (tmp_path / "src/bee/cmyk.jpg").write_bytes(buffer.getvalue())
    write_image(str(tmp_path / "src/cow/really_a_png.jpg"), 7, "PNG")
    result = make_tfrecords.build(config(tmp_path))
    skipped = {s["file"]: s["reason"] for s in result["skipped"]}
    assert set(skipped) == set(bad) | {"ant/anim.webp"}
    assert "WebP" in skipped["ant/anim.webp"] and "empty" in skipped["bee/empty.jpg"]
    accepted = sum(s["num_records"] for s in result["splits"].values())
    assert accepted + len(skipped) == 18 + 4 + 2
    with pytest.raises(make_tfrecords.BuildError, match="text.jpg"):
        make_tfrecords.build(config(tmp_path, strict=True, output=str(tmp_path / "strict")))
    assert not os.path.exists(tmp_path / "strict" / schema.MANIFEST_FILE)


def test_duplicates_reported_and_dropped(tmp_path):
    make_tree(tmp_path / "src", per_class=10)
    shutil.copy(tmp_path / "src/ant/000.png", tmp_path / "src/ant/zzz_copy.png")
    os.makedirs(tmp_path / "pre/train")
    shutil.copytree(tmp_path / "src", tmp_path / "pre/train", dirs_exist_ok=True)
    shutil.copytree(tmp_path / "src", tmp_path / "pre/val")
    for c in CLASSES:  # validation keeps 2 images per class, so train/val share those.
        for name in sorted(os.listdir(tmp_path / "pre/val" / c))[2:]:
            os.remove(tmp_path / "pre/val" / c / name)
    result = make_tfrecords.build(config(tmp_path, source=str(tmp_path / "pre")))
    dup = result["duplicates"]
    assert [(d["kept"], d["duplicates"]) for d in dup["within_split"]] == [
        ("train/ant/000.png", ["train/ant/zzz_copy.png"])]
    assert len(dup["across_splits"]) == 6
    deduped = make_tfrecords.build(
        config(tmp_path, source=str(tmp_path / "pre"), dedupe=True, output=str(tmp_path / "d")))
    assert deduped["splits"]["train"]["num_records"] == result["splits"]["train"]["num_records"] - 7
    assert deduped["splits"]["validation"]["num_records"] == 6


def test_a_photo_under_two_labels_is_reported_as_a_label_conflict(tmp_path, absl_caplog):
    make_tree(tmp_path / "src", per_class=6)
    shutil.copy(tmp_path / "src/ant/000.png", tmp_path / "src/bee/ant_or_bee.png")
    result = make_tfrecords.build(config(tmp_path))
    assert result["duplicates"]["conflicting_labels"] == [{
        "sha256": result["duplicates"]["conflicting_labels"][0]["sha256"],
        "files": {"ant/000.png": "ant", "bee/ant_or_bee.png": "bee"}}]
    assert "1 image(s) are stored under different labels (e.g. ant/000.png as ant, " \
           "bee/ant_or_bee.png as bee)" in absl_caplog.text
    deduped = make_tfrecords.build(config(tmp_path, dedupe=True, output=str(tmp_path / "d")))
    total = sum(s["num_records"] for s in deduped["splits"].values())
    assert total == 3 * 6 + 1 - 2  # both copies go: which label is right cannot be told


def test_verify_names_flipped_truncated_and_deleted_shards(tmp_path):
    make_tree(tmp_path / "src", per_class=10)
    result = make_tfrecords.build(config(tmp_path, num_shards=3))
    out = str(tmp_path / "out")
    names = [s["file"] for s in result["splits"]["train"]["shards"]]
    flipped = tmp_path / "out" / names[0]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    truncated = tmp_path / "out" / names[1]
    # A record is length (8) + length crc (4) + data + data crc (4): cut after the first.
    first_record_end = 16 + int.from_bytes(truncated.read_bytes()[:8], "little")
    truncated.write_bytes(truncated.read_bytes()[:first_record_end])
    os.remove(tmp_path / "out" / names[2])
    problems = manifest.verify_split(out, result, "train", check_sha256=True)
    for name in names:
        assert any(p.startswith(name) for p in problems), (name, problems)
    assert any("sha256" in p for p in problems if p.startswith(names[0]))
    assert any("missing" in p for p in problems if p.startswith(names[2]))
    with pytest.raises(ValueError) as err:
        manifest.preflight(out, ["train", "validation"])
    assert all(name in str(err.value) for name in names[1:])
    manifest.preflight(out, ["validation"], check_sha256=True)
    assert manifest.manifest_digest(out) == fileio.sha256_file(
        os.path.join(out, schema.MANIFEST_FILE))


def test_load_manifest_missing_says_how_to_fix(tmp_path):
    with pytest.raises(ValueError, match="no manifest.json in .*visiontrain-data build"):
        manifest.load_manifest(str(tmp_path))


def test_bad_sources_raise_clear_errors(tmp_path):
    make_tree(tmp_path / "src", per_class=2)
    os.makedirs(tmp_path / "src/empty_class")
    with pytest.raises(ValueError, match="empty_class is empty"):
        make_tfrecords.build(config(tmp_path))
    with pytest.raises(ValueError, match="inside --source"):
        make_tfrecords.build(config(tmp_path, output=str(tmp_path / "src/out")))


class TinyFlatColours(tfds.core.GeneratorBasedBuilder):
    """Two classes of flat-colour images, made locally: nothing to download."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(names=["dark", "light"]),
        }))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(30)}

    def _generate_examples(self, count):
        for i in range(count):
            value = 20 + i if i % 2 == 0 else 200 + i
            yield i, {"image": np.full((8, 10, 3), value, np.uint8), "label": i % 2}


def test_tfds_source_with_local_builder(tmp_path):
    TinyFlatColours(data_dir=str(tmp_path / "tfds")).download_and_prepare()
    cfg = config(tmp_path, source="tfds:tiny_flat_colours", tfds_data_dir=str(tmp_path / "tfds"),
                 val_fraction=0.2)
    result = make_tfrecords.build(cfg)
    assert result["labels"] == ["dark", "light"]
    assert result["splits"]["validation"]["class_counts"] == {"dark": 3, "light": 3}
    rows = read_split(cfg.output, result, "train")
    assert len(rows) == 24 and {r["text"] for r in rows} == {"dark", "light"}
    with pytest.raises(ValueError, match="no_such_dataset"):
        make_tfrecords.build(dataclasses.replace(cfg, source="tfds:no_such_dataset"))


@pytest.mark.parametrize("layout,why", [
    ("one image per class", r"every class has a single usable image.*add images, or a val/"),
    ("train/ only", r"assigns every image to a split and none to validation; add a val/"),
    ("nothing decodes", r"none of its 3 file\(s\) passed the format check, e.g. "),
])
def test_an_empty_validation_split_says_why_and_what_to_do(tmp_path, layout, why):
    make_tree(tmp_path / "tree", per_class=1)
    target = tmp_path / "src" / "train" if layout == "train/ only" else tmp_path / "src"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(tmp_path / "tree", target)
    if layout == "nothing decodes":
        for path in (tmp_path / "src").rglob("*.*"):
            path.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=why):
        make_tfrecords.build(config(tmp_path))
    assert not os.path.exists(tmp_path / "out")


def _tree_with_a_validation_only_class(root):
    """train/{ant,bee,cow} and val/{ant,bee,cow,zebra}: zebra has no training image."""
    make_tree(root / "train", per_class=4)
    for c, name in enumerate((*CLASSES, "zebra")):
        for i in range(2):
            write_image(str(root / "val" / name / f"v{i}.png"), 5000 + 10 * c + i)


def test_a_class_without_training_images_is_refused_before_anything_is_written(tmp_path):
    """Issue 23.2: val/zebra without train/zebra gave the head an output that never trained."""
    _tree_with_a_validation_only_class(tmp_path / "src")
    with pytest.raises(ValueError, match=r"1 class\(es\) of --source=.* have no training "
                       r"images: zebra \(2 validation image\(s\)\); the model would get an "
                       r"output for each that never trains\. .*--allow_untrained_classes") as err:
        make_tfrecords.build(config(tmp_path))
    assert "\n" not in str(err.value) and "threshold" not in str(err.value)
    assert not (tmp_path / "out").exists(), "a refused build wrote something"


def test_allow_untrained_classes_builds_and_the_manifest_lists_them(tmp_path, absl_caplog):
    _tree_with_a_validation_only_class(tmp_path / "src")
    result = make_tfrecords.build(config(tmp_path, allow_untrained_classes=True))
    assert result["labels"] == [*CLASSES, "zebra"] and result["untrained_classes"] == ["zebra"]
    assert result["splits"]["train"]["class_counts"]["zebra"] == 0
    assert result["splits"]["validation"]["class_counts"]["zebra"] == 2
    assert manifest.load_manifest(str(tmp_path / "out"))["untrained_classes"] == ["zebra"]
    assert "--allow_untrained_classes: 1 class(es) have no training images: zebra" in (
        absl_caplog.text)
    # A build with every class trained records an empty list, not a missing key.
    clean = make_tfrecords.build(config(tmp_path, source=str(tmp_path / "src" / "train"),
                                        output=str(tmp_path / "clean")))
    assert clean["untrained_classes"] == []


def test_many_untrained_classes_are_summarised_on_one_line():
    assert manifest.name_classes([f"c{i}" for i in range(23)]) == (
        ", ".join(f"c{i}" for i in range(20)) + " and 3 more")
    assert manifest.name_classes(["a", "b"]) == "a, b"


class TinyFlatColoursUnused(TinyFlatColours):
    """TinyFlatColours whose ClassLabel names a third class no example has."""

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(names=["dark", "light", "unused"]),
        }))


def test_a_tfds_class_without_examples_is_refused(tmp_path):
    TinyFlatColoursUnused(data_dir=str(tmp_path / "tfds")).download_and_prepare()
    cfg = config(tmp_path, source="tfds:tiny_flat_colours_unused",
                 tfds_data_dir=str(tmp_path / "tfds"), val_fraction=0.2)
    with pytest.raises(ValueError, match=r"no training images: unused \(no usable images\)"):
        make_tfrecords.build(cfg)
    assert not (tmp_path / "out").exists()


KILL_SCRIPT = """
import sys
from visiontrain.config import ConvertConfig
from visiontrain.pipelines import make_tfrecords
make_tfrecords.build(ConvertConfig(
    source=sys.argv[1], output=sys.argv[2], num_shards=6, num_workers=1, keep_png=True))
"""


def _strip_volatile(path):
    with open(path) as f:
        result = json.load(f)
    result.pop("created")
    result["flags"].pop("output")
    return result


@pytest.mark.slow
def test_rerun_after_kill_is_byte_identical(tmp_path):
    make_tree(tmp_path / "src", per_class=60, size=96)
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "src")]
    subprocess.run(cmd + [str(tmp_path / "ref")], env=env, check=True)
    out = tmp_path / "out"
    proc = subprocess.Popen(cmd + [str(out)], env=env)
    first = out / schema.shard_name("train", 0, 6)
    while not first.exists() and proc.poll() is None:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert not (out / schema.MANIFEST_FILE).exists(), "the run finished before the kill"
    inode = first.stat().st_ino
    subprocess.run(cmd + [str(out)], env=env, check=True)
    assert first.stat().st_ino == inode, "a complete shard was rewritten"
    shards = sorted(n for n in os.listdir(tmp_path / "ref") if n.endswith(".tfrecord"))
    assert shards == sorted(n for n in os.listdir(out) if n.endswith(".tfrecord"))
    for name in shards:
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
    assert _strip_volatile(out / schema.MANIFEST_FILE) == _strip_volatile(
        tmp_path / "ref" / schema.MANIFEST_FILE)


def corrupt_body_png(seed: int) -> bytes:
    """A PNG whose header and end marker are intact but whose pixel data is garbage."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16, 3), np.uint8)).save(
        buffer, "PNG")
    data = bytearray(buffer.getvalue())
    start = data.index(b"IDAT") + 8
    data[start : start + 40] = bytes(40)
    return bytes(data)


def test_strict_gates_everything_before_writing_and_counts_are_right(tmp_path, absl_caplog):
    caplog = absl_caplog
    make_tree(tmp_path / "src", per_class=6)
    (tmp_path / "src" / "bee" / "garbled.png").write_bytes(corrupt_body_png(1))
    strict_out = tmp_path / "strict"
    with pytest.raises(make_tfrecords.BuildError, match="garbled.png"):
        make_tfrecords.build(config(tmp_path, strict=True, output=str(strict_out)))
    assert not strict_out.exists(), "a refused --strict build wrote something"
    caplog.set_level("INFO")
    result = make_tfrecords.build(config(tmp_path))
    assert [s["file"] for s in result["skipped"]] == [os.path.join("bee", "garbled.png")]
    assert "png does not decode" in result["skipped"][0]["reason"]
    assert "found 19 files: 18 pass the gate, 1 skipped" in caplog.text
    assert sum(s["num_records"] for s in result["splits"].values()) == 18


def test_progress_logs_at_a_steady_wall_clock_interval(monkeypatch, absl_caplog):
    caplog = absl_caplog
    clock = iter([0.0, 1.0, 4.0, 9.9, 10.5, 11.0, 25.0, 26.0])
    monkeypatch.setattr(make_tfrecords.time, "monotonic", lambda: next(clock))
    caplog.set_level("INFO")
    progress = make_tfrecords.Progress("scanning", 7, interval=10.0)
    for _ in range(7):
        progress.update()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("scanning")]
    # At 10.5 s and 25 s (10 s apart or more), and once at the end.
    assert [line.split(",")[0] for line in lines] == [
        "scanning: 4/7 images", "scanning: 6/7 images", "scanning: 7/7 images"]


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_the_rerun_resumes_byte_identically(tmp_path):
    make_tree(tmp_path / "src", per_class=60, size=96)
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "visiontrain.tools.data", "build", "--source=src",
           "--num_shards=6", "--num_workers=1", "--keep_png"]
    subprocess.run(cmd + ["--output=ref"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    proc = subprocess.Popen(cmd + ["--output=out"], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, text=True)
    first = tmp_path / "out" / schema.shard_name("train", 0, 6)
    while not first.exists() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert [line for line in stderr.splitlines() if "visiontrain-data" in line] == [
        "visiontrain-data: error: interrupted; complete shards are kept, rerun the same "
        "command to resume"]
    subprocess.run(cmd + ["--output=out"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    names = sorted(n for n in os.listdir(tmp_path / "ref") if n.endswith(".tfrecord"))
    for name in names:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()


def test_identical_shards_rebuilt_elsewhere_are_the_same_data(tmp_path):
    """Runs bind the data's content, not its manifest (which records when and where)."""
    from visiontrain.pipelines import manifest

    make_tree(tmp_path / "src", per_class=6)
    first = make_tfrecords.build(config(tmp_path, num_shards=2))
    again = make_tfrecords.build(config(tmp_path, num_shards=2, output=str(tmp_path / "o2")))
    assert manifest.manifest_digest(str(tmp_path / "out")) != manifest.manifest_digest(
        str(tmp_path / "o2"))
    assert manifest.content_digest(first) == manifest.content_digest(again)
    assert manifest.describe(first) == ("3 classes, single-label, records: train "
                                        f"{first['splits']['train']['num_records']}, validation "
                                        f"{first['splits']['validation']['num_records']}")
    os.remove(tmp_path / "src" / "ant" / "000.png")
    fewer = make_tfrecords.build(config(tmp_path, num_shards=2, output=str(tmp_path / "o3")))
    assert manifest.content_digest(fewer) != manifest.content_digest(first)
