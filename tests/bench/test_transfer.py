"""The transfer benchmark end to end on the digit scans (pretrain 0-4, transfer to 5-9)."""

from __future__ import annotations

import os

import pytest

from visiontrain.bench.transfer import bench_transfer
from visiontrain.tools.demo import write_digits_tree


@pytest.mark.slow
def test_transfer_benchmark_trains_three_networks_for_the_same_steps(tmp_path):
    tree = str(tmp_path / "digits")
    write_digits_tree(tree, seed=0, val_fraction=0.3)
    os.rename(os.path.join(tree, "val"), os.path.join(tree, "test"))
    result = bench_transfer(tree, model="small_cnn", shots=10, pretrain_epochs=8, epochs=20,
                            freeze_epochs=5, image_size=16, few_shot_batch=25,
                            work_dir=str(tmp_path / "work"))
    assert result["first5"] == ["0", "1", "2", "3", "4"]
    assert result["last5"] == ["5", "6", "7", "8", "9"]
    runs = ("fine_tuned", "linear_probe", "scratch")
    # 10 shots x 5 classes at batch 25 is 2 steps per epoch, the same for all three.
    assert {result[name]["steps"] for name in runs} == {40}
    assert result["pretrain"]["accuracy"] > 0.5
    # Five classes: chance is 0.2. Pretrained features on digits carry over well.
    assert result["fine_tuned"]["accuracy"] > 0.4
    assert result["linear_probe"]["accuracy"] > 0.4


def test_a_tree_without_ten_classes_is_refused(tmp_path):
    for name in ("a", "b"):
        os.makedirs(tmp_path / "train" / name)
    with pytest.raises(ValueError, match="has 2 classes; the benchmark needs 10"):
        bench_transfer(str(tmp_path), work_dir=str(tmp_path / "work"))
