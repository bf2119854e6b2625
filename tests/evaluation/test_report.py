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
