"""The augmentation benchmark's per-op table and peers at tiny sizes: rows and keys, not speed."""

import math
import sys

import pytest

from visiontrain.augment import randaugment as ra
from visiontrain.augment.policy import PRESETS, parse_policy
from visiontrain.bench import augment as augment_bench


def _preset_stage_names():
    names = set()
    for preset in augment_bench.OP_PRESETS:
        ops = [op.name for op in parse_policy(PRESETS[preset])]
        mixes = [name for name in ops if name in ("mixup", "cutmix")]
        names |= {name for name in ops if name not in mixes}
        if mixes:
            names.add("+".join(mixes))
    return names


def test_rows_cover_every_op_of_the_presets_and_each_randaugment_op():
    rows = set(augment_bench.preset_op_rows())
    assert _preset_stage_names() == {"flip", "jitter", "randaugment", "erase", "mixup+cutmix"}
    assert rows == _preset_stage_names() | {f"randaugment.{name}" for name in ra.OPS}


def test_per_op_table_has_a_row_per_op_and_prints_it(capsys):
    result = augment_bench.bench_augment(image_size=16, batch=2, repeats=1, parts=("ops",))
    rows = set(augment_bench.preset_op_rows())
    assert set(result["op_ms_per_image"]) == rows == set(result["op_ratio_to_decode"])
    assert result["decode_crop_ms_per_image"] > 0 and result["cast_step_ms_per_image"] > 0
    # Differences of two timings: any finite number, not a speed claim.
    assert all(math.isfinite(v) for v in result["op_ms_per_image"].values())
    augment_bench.print_table(result)
    printed = capsys.readouterr().out
    assert "decode + crop" in printed
    assert all(f"    {row} " in printed for row in rows)


def test_unknown_part_and_configuration_are_named():
    with pytest.raises(ValueError, match=r"Unknown augment benchmark part\(s\) \['fast'\]"):
        augment_bench.bench_augment(parts=("ops", "fast"))
    with pytest.raises(ValueError, match="unknown augment benchmark configuration 'fast'"):
        augment_bench.run_config("fast", 16, 2, 1)


def test_kerascv_peer_is_reported_when_installed():
    pytest.importorskip("keras_cv")
    figures = augment_bench.bench_randaugment(image_size=16, batch=2, repeats=1)
    assert figures["R_randaugment_kerascv"] > 0 and figures["randaugment_kerascv_img_s"] > 0


def test_kerascv_peer_is_skipped_with_a_note_when_absent(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "keras_cv", None)  # makes `import keras_cv` fail
    figures = augment_bench.bench_randaugment(image_size=16, batch=2, repeats=1)
    assert "R_randaugment_kerascv" not in figures and figures["R_randaugment"] > 0
    note = capsys.readouterr().err.strip().splitlines()
    assert note == ["R_randaugment_kerascv skipped: keras-cv is not installed "
                    "(pip install 'visiontrain[bench]')."]
