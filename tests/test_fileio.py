"""Atomic writes, directory publication and file hashing."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from visiontrain import fileio


def test_write_bytes_and_json_replace_whole_files_and_leave_no_temp(tmp_path):
    path = str(tmp_path / "sub" / "a.json")
    fileio.write_json_atomic(path, {"b": 1, "a": "é"})
    fileio.write_json_atomic(path, {"b": 2, "a": "é"})
    assert fileio.read_json(path) == {"a": "é", "b": 2}
    assert open(path, encoding="utf-8").read().index('"a"') < open(path).read().index('"b"')
    fileio.write_bytes_atomic(path, b"\x00\x01")
    assert open(path, "rb").read() == b"\x00\x01"
    assert os.listdir(tmp_path / "sub") == ["a.json"]


def test_failed_write_keeps_the_old_content(tmp_path):
    path = str(tmp_path / "a.json")
    fileio.write_json_atomic(path, [1])
    with pytest.raises(TypeError):
        fileio.write_json_atomic(path, {"x": object()})
    assert json.load(open(path)) == [1] and os.listdir(tmp_path) == ["a.json"]


def test_temp_path_keeps_the_suffix_and_is_hidden(tmp_path):
    tmp = fileio.temp_path(str(tmp_path / "best.weights.h5"))
    assert tmp.endswith(".weights.h5")
    assert os.path.basename(tmp).startswith(fileio.TMP_PREFIX)


def test_publish_directory_never_replaces(tmp_path):
    staged = tmp_path / ".tmp-1"
    (staged / "inner").mkdir(parents=True)
    (staged / "inner" / "f").write_bytes(b"x")
    fileio.publish(str(staged), str(tmp_path / "1"))
    assert (tmp_path / "1" / "inner" / "f").read_bytes() == b"x" and not staged.exists()
    (tmp_path / ".tmp-2").mkdir()
    with pytest.raises(FileExistsError, match="never replaced"):
        fileio.publish(str(tmp_path / ".tmp-2"), str(tmp_path / "1"))


def test_sha256_file_matches_hashlib_across_blocks(tmp_path):
    data = os.urandom((1 << 20) + 17)
    (tmp_path / "f").write_bytes(data)
    assert fileio.sha256_file(str(tmp_path / "f")) == hashlib.sha256(data).hexdigest()


def test_check_writable_refuses_by_flag_and_leaves_no_trace(tmp_path):
    fileio.check_writable(str(tmp_path / "new" / "deeper"), "--output")
    assert not (tmp_path / "new").exists()  # made for the probe, removed again
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(fileio.NotWritable, match=r"--output=.*/file/out cannot be written \("):
        fileio.check_writable(str(tmp_path / "file" / "out"), "--output")
    with pytest.raises(fileio.NotWritable, match=r"cannot write .*/file/x.json \("):
        fileio.write_json_atomic(str(tmp_path / "file" / "x.json"), {})
