"""What the tools print and draw for people about a dataset (evaluation/report.py)."""

from __future__ import annotations

from visiontrain.evaluation import report


def test_the_count_table_summarises_many_classes():
    names = [f"class{i:05d}" for i in range(10_000)]
    loaded = {"labels": names, "splits": {
        "train": {"num_records": 10_000 * 3, "class_counts": {n: 1 + i % 7 for i, n in
                                                              enumerate(names)}},
        "validation": {"num_records": 10_000, "class_counts": {n: 1 for n in names}}}}
    lines = report.count_table(loaded).splitlines()
    assert len(lines) == report.TABLE_CLASSES + 2  # header, the classes shown, total
    assert "9960 more in manifest.json" in lines[0]
    assert lines[1].split()[1] == "1" and lines[-2].split()[1] == "7"  # smallest, largest
    assert lines[-1].split()[0] == "total"


def test_collect_logs_its_progress_against_the_total(monkeypatch, absl_caplog):
    import tensorflow as tf

    from visiontrain.evaluation import predictors

    monkeypatch.setattr(predictors, "PROGRESS_SECONDS", 0.0)
    records = tf.data.Dataset.from_tensor_slices(
        (tf.constant([b"x"] * 6), tf.constant([0, 1, 0, 1, 0, 1]))).batch(2)
    predictors.collect(lambda e: tf.one_hot(tf.zeros_like(tf.strings.length(e)), 2), records,
                       total=6)
    assert "evaluated 6/6 images" in absl_caplog.text
