"""A hostile source tree: every file found once, accepted + rejected = found, labels by folder."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from tests.helpers.images import mode_files
from visiontrain.config import ConvertConfig
from visiontrain.pipelines import make_tfrecords, schema

CLASSES = ("cat", "dog food", "ünïcode")


def hostile_tree(root) -> None:
    """train/ and test/ split folders, every mode, links and loops, odd names, junk."""
    for s, split in enumerate(("train", "test")):
        for c, name in enumerate(CLASSES[:2]):
            for file, data in mode_files(seed=10 * s + c).items():
                path = root / "src" / split / name / f"{s} {c} ñ {file}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        # The third class is linked in from elsewhere, as users do.
        elsewhere = root / "elsewhere" / split
        elsewhere.mkdir(parents=True)
        for file, data in list(mode_files(seed=100 + s).items())[:4]:
            (elsewhere / f"été {file}").write_bytes(data)
        os.symlink(elsewhere, root / "src" / split / CLASSES[2])
    cat = root / "src" / "train" / "cat"
    os.symlink("..", cat / "loop")                                   # a loop to the split
    os.symlink(root / "src" / "train" / "dog food", cat / "dogs")    # into another class
    os.symlink(next(cat.glob("*rgb.png")), cat / "again.png")        # a file linked twice
    os.symlink(root / "nowhere", cat / "broken.png")
    (cat / "sub dir").mkdir()
    (cat / "sub dir" / "deep.png").write_bytes(mode_files(seed=7)["rgb.png"])
    (cat / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cat / "notes.txt").write_text("not an image")
    (cat / "cut.jpg").write_bytes(mode_files(seed=8)["rgb.jpg"][:200])
    (root / "src" / "README").write_text("stray file at the top")


def real_files(root) -> set[str]:
    """Every file in the tree, each real file once by its real path."""
    found = set()
    for base in (root / "src", root / "elsewhere"):
        for directory, _, files in os.walk(base):
            found |= {os.path.join(directory, f) for f in files
                      if not os.path.islink(os.path.join(directory, f))}
    return found


def test_hostile_corpus(tmp_path):
    hostile_tree(tmp_path)
    cfg = ConvertConfig(source=str(tmp_path / "src"), output=str(tmp_path / "out"),
                        num_workers=2)
    result = make_tfrecords.build(cfg)
    assert result["labels"] == list(CLASSES) and result["layout"].startswith("split folders")
    stored = []
    for split, info in result["splits"].items():
        for shard in info["shards"]:
            for record in tf.data.TFRecordDataset(os.path.join(cfg.output, shard["file"])):
                f = schema.parse_example(record)
                stored.append((split, f[schema.FILENAME].numpy().decode(),
                               f[schema.TEXT].numpy().decode()))
    files = [name for _, name, _ in stored]
    skipped = [s["file"] for s in result["skipped"]]
    # Every file found once: no name twice, stored and skipped disjoint.
    assert len(files) == len(set(files)) and not set(files) & set(skipped)
    assert len(skipped) == len(set(skipped))
    # Every real file is found once, under some name (links to elsewhere included).
    src = os.path.realpath(tmp_path / "src")
    reached = {os.path.realpath(os.path.join(src, name)) for name in files + skipped}
    assert {os.path.realpath(p) for p in real_files(tmp_path)} <= reached
    # accepted + rejected = found.
    found = 2 * (2 * len(mode_files()) + 4) + 6 + 1  # + the six file entries in cat/ and the README
    assert len(files) + len(skipped) == found
    assert sum(s["num_records"] for s in result["splits"].values()) == len(files) == found - 6
    # Labels equal the folder the file was found under; splits equal the split folder.
    for split, name, label in stored:
        folder_split, folder = name.split(os.sep)[:2]
        assert label == folder and split == {"train": "train", "test": "validation"}[folder_split]
    reasons = {s["file"]: s["reason"] for s in result["skipped"]}
    assert reasons["README"] == "not inside a class directory"
    assert reasons[os.path.join("train", "cat", ".DS_Store")].startswith("hidden")
    assert reasons[os.path.join("train", "cat", "again.png")].startswith("link not followed")
    assert reasons[os.path.join("train", "cat", "broken.png")].startswith("broken link")
    assert reasons[os.path.join("train", "cat", "cut.jpg")].startswith("truncated JPEG")
    assert "unknown format" in reasons[os.path.join("train", "cat", "notes.txt")]
    links = {entry["link"]: entry["reason"] for entry in result["links_not_followed"]}
    assert links[os.path.join("train", "cat", "loop")].endswith("(a loop)")
    assert links[os.path.join("train", "cat", "dogs")].endswith("as train/dog food")
    with open(os.path.join(cfg.output, schema.MANIFEST_FILE), encoding="utf-8") as f:
        assert json.load(f)["links_not_followed"] == result["links_not_followed"]
