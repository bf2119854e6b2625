"""Walking a source tree: links, loops, split folders, hidden files, labels by folder."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from visiontrain.pipelines import sources


def image(path, value: int = 0) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((6, 6, 3), value, np.uint8)).save(path)


def by_file(source: sources.Source) -> dict[str, str]:
    return {i.relpath: source.labels[i.label] for i in source.items}


def test_loop_link_is_reported_not_followed(tmp_path):
    for c in ("cat", "dog"):
        for i in range(3):
            image(tmp_path / c / f"{i}.png", i)
    os.symlink("..", tmp_path / "cat" / "loop")
    source = sources.scan_folder(str(tmp_path))
    assert len(source.items) == 6
    assert all(label == path.split(os.sep)[0] for path, label in by_file(source).items())
    assert source.links == ((os.path.join("cat", "loop"), "link not followed: already scanned "
                             "as . (a loop)"),)


def test_linked_class_folder_from_elsewhere_is_followed_and_labelled_by_its_name(tmp_path):
    image(tmp_path / "elsewhere" / "pics" / "a.png")
    image(tmp_path / "src" / "dog" / "b.png")
    os.symlink(tmp_path / "elsewhere" / "pics", tmp_path / "src" / "cat")
    source = sources.scan_folder(str(tmp_path / "src"))
    assert by_file(source) == {os.path.join("cat", "a.png"): "cat",
                               os.path.join("dog", "b.png"): "dog"}


def test_link_into_another_class_is_not_followed(tmp_path):
    image(tmp_path / "cat" / "a.png")
    image(tmp_path / "dog" / "b.png")
    os.symlink(tmp_path / "dog", tmp_path / "cat" / "dogs")
    os.symlink(tmp_path / "dog" / "b.png", tmp_path / "cat" / "b_again.png")
    source = sources.scan_folder(str(tmp_path))
    assert by_file(source) == {os.path.join("cat", "a.png"): "cat",
                               os.path.join("dog", "b.png"): "dog"}
    assert [r for _, r in source.links] == ["link not followed: already scanned as dog"]
    assert dict(source.stray)[os.path.join("cat", "b_again.png")].startswith("link not followed")


def test_hidden_and_broken_entries_are_counted_with_reasons(tmp_path):
    image(tmp_path / "cat" / "a.png")
    image(tmp_path / "dog" / "b.png")
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"x")
    (tmp_path / ".hidden_top").write_bytes(b"x")
    os.symlink(tmp_path / "nowhere", tmp_path / "dog" / "broken.png")
    stray = dict(sources.scan_folder(str(tmp_path)).stray)
    assert stray[os.path.join("cat", ".DS_Store")].startswith("hidden")
    assert stray[".hidden_top"].startswith("hidden")
    assert stray[os.path.join("dog", "broken.png")].startswith("broken link")


@pytest.mark.parametrize("val_name,split_of_test", [("test", "validation"), ("val", None),
                                                    ("Validation", None)])
def test_split_folders_are_splits(tmp_path, val_name, split_of_test):
    for split in {"train", val_name, "test"}:
        for c in ("cat", "dog"):
            image(tmp_path / split / c / "x.png")
    source = sources.scan_folder(str(tmp_path))
    assert source.labels == ("cat", "dog")
    splits = {i.relpath.split(os.sep)[0]: i.split for i in source.items}
    assert splits["train"] == "train" and splits.get(val_name) == "validation"
    if split_of_test is None:
        assert [r for _, r in source.stray if r.startswith("in a test/")]
    assert "train/ -> train" in source.layout


@pytest.mark.parametrize("folders,words", [
    (("train", "test", "cat"), r"split folders \['test', 'train'\] next to \['cat'\]"),
    (("test", "val"), "and no train/"),
    (("train", "val", "validation"), "SOURCE/train/CLASS/image"),
])
def test_split_names_mixed_or_ambiguous_are_refused_with_the_layout(tmp_path, folders, words):
    for folder in folders:
        image(tmp_path / folder / "c" / "x.png")
    with pytest.raises(ValueError, match=words):
        sources.scan_folder(str(tmp_path))
