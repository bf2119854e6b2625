"""Label files (CSV, JSONL) as converter sources: same shards as folders, every row accounted."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from tests.helpers.trees import CLASSES, config, make_tree
from visiontrain.pipelines import label_files, make_tfrecords


def _shard_bytes(out_dir, result):
    return {split: [open(os.path.join(out_dir, s["file"]), "rb").read()
                    for s in result["splits"][split]["shards"]]
            for split in result["splits"]}


def _tree_rows(root):
    return sorted(os.path.join(name, f) for name in CLASSES
                  for f in os.listdir(os.path.join(root, name)))


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_single_label_file_gives_the_shards_the_folder_tree_gives(tmp_path, kind):
    make_tree(tmp_path / "src", per_class=6)
    from_tree = make_tfrecords.build(config(tmp_path, num_shards=2))
    rows = _tree_rows(tmp_path / "src")
    label_file = tmp_path / "src" / f"labels.{kind}"
    if kind == "csv":
        label_file.write_text("path,label\n" + "".join(
            f"{p},{os.path.dirname(p)}\n" for p in rows))
    else:
        label_file.write_text("".join(
            json.dumps({"path": p, "labels": [os.path.dirname(p)]}) + "\n" for p in rows))
    from_file = make_tfrecords.build(config(tmp_path, source=str(label_file),
                                            output=str(tmp_path / "out_file"), num_shards=2))
    assert from_file["labels"] == from_tree["labels"] == sorted(CLASSES)
    assert _shard_bytes(tmp_path / "out_file", from_file) == _shard_bytes(tmp_path / "out",
                                                                           from_tree)
    assert from_file["skipped"] == []


def _write_bad_csv(root):
    make_tree(root, per_class=3)
    a, b = CLASSES[0], CLASSES[1]
    lines = [
        "path,labels,split",
        f"{a}/000.png,{a},train",            # 2: fine
        f"{a}/001.jpeg,{a},val",             # 3: fine, validation
        f"{a}/002.png,,train",               # 4: empty label
        f"{a}/missing.png,{a},train",        # 5: no such file
        f"{b}/000.png,{b},holdout",          # 6: unknown split
        f"{b}/001.jpeg,{b},train",           # 7: fine
        f"{b}/001.jpeg,{b},train",           # 8: repeats line 7
        f"{b}/002.png,{b},train",            # 9: conflicts with line 10
        f"{b}/002.png,{a},train",            # 10
        f"{a}/000.png,{a}|{b},train",        # 11: conflicts with line 2 (its labels differ)
        f"{b}/000.png,{b},test",             # 12: held out
        f"{b}/001.jpeg,{b},validation",      # 13: repeat with another split
        f",{a},train",                       # 14: no path
    ]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


def test_every_row_is_used_once_or_reported_by_line(tmp_path):
    source = label_files.scan_label_file(str(_write_bad_csv(tmp_path / "src")))
    used = {item.relpath: (source.labels[item.label], item.split) for item in source.items}
    a, b = CLASSES[0], CLASSES[1]
    assert used == {f"{a}/001.jpeg": (a, "validation"), f"{b}/001.jpeg": (b, "train")}
    reasons = dict(source.stray)
    assert reasons["labels.csv:4"] == "line 4: empty label"
    assert reasons["labels.csv:5"].startswith("line 5: no such file")
    assert "unknown split 'holdout'" in reasons["labels.csv:6"]
    assert reasons["labels.csv:8"] == "line 8: repeats line 7"
    assert f"labelled '{a}' here and '{b}' on line 9; no row of it is used" in reasons[
        "labels.csv:10"]
    assert "conflicting labels" in reasons["labels.csv:9"]
    assert f"labelled {[a, b]} here and '{a}' on line 2" in reasons["labels.csv:11"]
    assert "conflicting labels" in reasons["labels.csv:2"]
    assert reasons[f"{b}/000.png"] == "line 12: split test is held out"
    assert "line 13" in reasons["labels.csv:13"] and "repeats line 7" in reasons["labels.csv:13"]
    assert reasons["labels.csv:14"] == "line 14: no path"
    # 13 rows: 2 used, 11 reported, none lost; no usable row has two labels.
    assert len(used) + len(source.stray) == 13
    assert not source.multi_label


def test_strict_refuses_a_label_file_with_bad_rows_and_writes_nothing(tmp_path):
    label_file = _write_bad_csv(tmp_path / "src")
    with pytest.raises(make_tfrecords.BuildError, match="line 4: empty label"):
        make_tfrecords.build(config(tmp_path, source=str(label_file), strict=True))
    assert not os.path.exists(tmp_path / "out")


def test_bad_headers_and_json_are_one_clear_error(tmp_path):
    (tmp_path / "a.csv").write_text("file,class\nx.png,cat\n")
    with pytest.raises(ValueError, match="header needs `path` and `label`"):
        label_files.scan_label_file(str(tmp_path / "a.csv"))
    (tmp_path / "b.jsonl").write_text('{"path": "x.png", "labels": "cat"}\n')
    with pytest.raises(ValueError, match="line 1 is not a JSON object"):
        label_files.scan_label_file(str(tmp_path / "b.jsonl"))
    assert label_files.is_label_file(str(tmp_path / "a.csv"))
    assert not label_files.is_label_file(str(tmp_path))


def test_a_multi_label_file_writes_model_garden_int64_lists_and_records_the_task(tmp_path):
    """Rows with several labels: the label is an int64 list (MG's multi-label decoder reads
    it), TEXT joins the names, class_counts count every label, the manifest says the task."""
    import tensorflow as tf

    from visiontrain.pipelines import schema

    make_tree(tmp_path / "src", per_class=4)
    ant, bee, cow = CLASSES
    rows = [(f"{name}/{i:03d}.{'jpeg' if i % 2 else 'png'}", labels)
            for name in CLASSES for i, labels in enumerate(
                [[name], [name, ant], [name, cow, name], [bee, cow]])]
    (tmp_path / "src" / "labels.jsonl").write_text("".join(
        json.dumps({"path": p, "labels": labels, "split": "train" if i % 4 else "val"}) + "\n"
        for i, (p, labels) in enumerate(rows)))
    result = make_tfrecords.build(config(tmp_path, source=str(tmp_path / "src/labels.jsonl"),
                                         num_shards=1))
    assert result[schema.TASK] == schema.MULTI_LABEL and result["skipped"] == []
    # Train rows per class: [name, ant], [name, cow, name], [bee, cow]; a label counts once
    # per row: ant {ant}, {ant, cow}, {bee, cow}; bee {ant, bee}, {bee, cow} x2; cow {ant, cow},
    # {cow}, {bee, cow}.
    assert result["splits"]["train"]["class_counts"] == {ant: 4, bee: 5, cow: 7}
    path = os.path.join(tmp_path / "out", result["splits"]["train"]["shards"][0]["file"])
    seen = {}
    for record in tf.data.TFRecordDataset(path):
        # Model Garden's multi-label decoder: a VarLenFeature of int64.
        mg = tf.io.parse_single_example(record, {schema.LABEL: tf.io.VarLenFeature(tf.int64)})
        ours = schema.parse_example(record, multi_label=True)
        ids = tf.sparse.to_dense(mg[schema.LABEL]).numpy().tolist()
        assert ours[schema.LABEL].numpy().tolist() == ids
        assert schema.multi_hot(ours[schema.LABEL], 3).numpy().tolist() == [
            int(i in ids) for i in range(3)]
        seen[ours[schema.FILENAME].numpy().decode()] = ours[schema.TEXT].numpy().decode()
    assert seen[f"{bee}/001.jpeg"] == f"{ant}|{bee}" and seen[f"{ant}/002.png"] == f"{ant}|{cow}"
    assert seen[f"{ant}/001.jpeg"] == ant  # [ant, ant]: a label named twice counts once
    # `visiontrain-data inspect` draws a multi-label image in the row of each of its labels.
    from visiontrain.evaluation import report

    grid = report.sample_grid(str(tmp_path / "out"), result, per_class=4)
    assert grid.ndim == 3 and grid.shape[2] == 3


@pytest.mark.parametrize("multi_label", [False, True], ids=["single", "multi"])
def test_a_label_only_on_validation_rows_is_refused(tmp_path, multi_label):
    """Issue 23.2: a label on validation rows only got a tuned threshold (0.218) and was
    exported as a live output that never trained."""
    make_tree(tmp_path / "src", per_class=4)
    ant, bee, cow = CLASSES
    rows = [f"{name}/{i:03d}.{'jpeg' if i % 2 else 'png'}" for name in CLASSES for i in range(4)]
    lines = ["path,labels,split"]
    for path in rows:
        name = path.split("/")[0]
        split = "val" if name == cow or path.endswith("000.png") else "train"
        # Multi-label: cow shares validation rows with ant; single-label: one label a row.
        labels = f"{ant}|{cow}" if multi_label and name == cow else name
        lines.append(f"{path},{labels},{split}")
    (tmp_path / "src" / "labels.csv").write_text("\n".join(lines) + "\n")
    cfg = config(tmp_path, source=str(tmp_path / "src" / "labels.csv"))
    threshold = ", with a threshold tuned on validation alone" if multi_label else ""
    with pytest.raises(ValueError) as err:
        make_tfrecords.build(cfg)
    assert (f"have no training images: {cow} (4 validation image(s)); the model would get an "
            f"output for each that never trains{threshold}. Add training images") in str(err.value)
    assert not (tmp_path / "out").exists()
    result = make_tfrecords.build(dataclasses.replace(cfg, allow_untrained_classes=True))
    assert result["untrained_classes"] == [cow]
    assert (result["task"] == "multi_label") == multi_label


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_byte_order_mark_is_read_past(tmp_path, kind):
    """Excel's "CSV UTF-8" and JSONL from Windows tools start with a byte-order mark."""
    make_tree(tmp_path / "src", per_class=3)
    rows = _tree_rows(tmp_path / "src")
    if kind == "csv":
        text = "path,label\n" + "".join(f"{p},{os.path.dirname(p)}\n" for p in rows)
    else:
        text = "".join(json.dumps({"path": p, "label": os.path.dirname(p)}) + "\n" for p in rows)
    (tmp_path / "src" / f"labels.{kind}").write_bytes("\ufeff".encode() + text.encode())
    source = label_files.scan_label_file(str(tmp_path / "src" / f"labels.{kind}"))
    assert source.labels == tuple(sorted(CLASSES)) and not source.stray
    assert len(source.items) == len(rows)


def _joined_csv(root, separator: str, names=None) -> str:
    make_tree(root, per_class=3)
    rows = _tree_rows(root)
    names = names or [os.path.dirname(p) for p in rows]
    lines = [f'{p},"{n}{separator}{names[(i + 1) % len(names)]}"' if i % 3 else f"{p},{n}"
             for i, (p, n) in enumerate(zip(rows, names))]
    (root / "labels.csv").write_text("path,label\n" + "\n".join(lines) + "\n")
    return str(root / "labels.csv")


@pytest.mark.parametrize("separator", [";", ",", "|"])
def test_labels_joined_by_another_separator_are_refused_by_name(tmp_path, separator):
    with pytest.raises(ValueError, match=f"join labels with {separator!r}.*`labels` column"):
        label_files.scan_label_file(_joined_csv(tmp_path / "src", separator))


def test_names_with_commas_that_name_nothing_else_are_one_label(tmp_path):
    # ImageNet's class names: "tench, Tinca tinca" is one class, not two labels.
    make_tree(tmp_path / "src", per_class=3)
    rows = _tree_rows(tmp_path / "src")
    names = {c: f"{c}, also called {c.upper()}" for c in CLASSES}
    (tmp_path / "src" / "labels.csv").write_text("path,label\n" + "".join(
        f'{p},"{names[os.path.dirname(p)]}"\n' for p in rows))
    source = label_files.scan_label_file(str(tmp_path / "src" / "labels.csv"))
    assert source.labels == tuple(sorted(names.values()))
