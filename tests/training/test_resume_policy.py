"""The resume policy (issue 12.3, 12.4): every flag decided by its declaration, the docs'
table is the code's, and a refused rerun leaves the run's records byte-identical.

Fast: flags are changed one at a time through absl's own parsers and serialisers (what
flags.txt holds), converted into configs as the tool does, and `bind_run` is driven on
those records without training. Real reruns of `visiontrain-train` are in
tests/tools/test_run_dir.py.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import pytest
from absl import flags

from tests.helpers.flagvalues import parsed
from visiontrain.augment.policy import PRESETS
from visiontrain.config import RUN_CONFIGS
from visiontrain.flags import configs, definitions, reference
from visiontrain.training import resume_policy, rundir

TOOL = (definitions.define_train_flags,)
# A valid value for flags whose validators or meaning need one (paths are absolute, as
# config.json stores them; a preset other than 'none', which is the default policy).
STRING_VALUES = {"model": "resnet20", "unfreeze": "last:2", "augment": "flip",
                 "tf_data_service": "grpc://localhost:5050", "class_weights": "/weights.json",
                 "pretrained": "/weights.h5", "tfds_data_dir": "/tfds",
                 "final_weights": "/final.weights.h5", "augment_preset": "light",
                 "aspect_ratio_max": "2.0", "data_dir": "/data/other", "run_dir": "/runs/b"}


@functools.cache
def tool_flags() -> dict[str, flags.Flag]:
    fv = parsed(TOOL, *(f"--{name}={value}" for name, value in BASE.items()))
    return {flag.name: flag for module, module_flags in fv.flags_by_module_dict().items()
            if "visiontrain" in module for flag in module_flags}


def other_value(flag: flags.Flag):
    """A different, valid value of `flag`, parsed by the flag's own parser."""
    if flag.name in STRING_VALUES:
        return flag._parse(STRING_VALUES[flag.name])
    value = flag.default
    if isinstance(flag, flags.EnumFlag) or hasattr(flag.parser, "enum_values"):
        return next(v for v in flag.parser.enum_values if v != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.5
    if isinstance(value, list):
        return ["1", "2"]
    return (value or "") + "elsewhere"


def serialized(values: dict[str, object]) -> str:
    """flags.txt for `values` over the defaults, as `configs.flagfile_text` writes it."""
    lines = []
    for name, flag in sorted(tool_flags().items()):
        value = values.get(name, flag.default)
        if value is not None:
            lines.append(flag._serialize(value))
    return "\n".join(lines) + "\n"


def as_written(flag: flags.Flag, value) -> str:
    """`value` of `flag` as its flags.txt line says it: true/false for booleans."""
    line = flag._serialize(value)
    if "=" in line:
        return line.partition("=")[2]
    return "false" if line == f"--no{flag.name}" else "true"


def config_of(flagfile: str, labels=("cat", "dog")) -> dict:
    """config.json of a run the tool starts with `flagfile`."""
    fv = parsed(TOOL, *flagfile.splitlines())
    return rundir.config_record(configs.data_config(fv), configs.model_config(fv),
                                configs.train_config(fv), list(labels), None,
                                configs.distribution_config(fv))


BASE = {"data_dir": "/data/digits", "run_dir": "/runs/a"}


def test_every_flag_of_the_tool_has_exactly_one_group():
    for name in tool_flags():
        assert reference.resume_group(name) is not None, f"--{name} has no resume group"
    for section, cls in RUN_CONFIGS.items():
        for field in dataclasses.fields(cls):
            assert resume_policy.group_of(cls, field) is not None, f"{section}.{field.name}"


def test_the_docs_table_is_the_code_table():
    text = reference.DOCS.read_text()
    for name in tool_flags():
        row = next(line for line in text.split("## visiontrain-train")[1].splitlines()
                   if line.startswith(f"| `--{name}` |"))
        assert f" | {reference.resume_group(name).name} | " in row, (
            f"docs/flags.md is stale; regenerate it: {reference.REGENERATE}")


@pytest.mark.parametrize("name", sorted(tool_flags()))
def test_changing_one_flag_is_refused_or_allowed_as_the_table_says(name, tmp_path,
                                                                  absl_caplog):
    """Two runs into one directory, the second with `name` changed: the table decides."""
    flag = tool_flags()[name]
    old_text = serialized(BASE)
    new_text = serialized({**BASE, name: other_value(flag)})
    if name in definitions.RESOLVED_INTO:  # A preset is recorded as the policy it names.
        expected = resume_policy.Change(f"--{definitions.RESOLVED_INTO[name]}", "",
                                        PRESETS[other_value(flag)])
    else:
        expected = resume_policy.Change(f"--{name}",
                                        as_written(flag, BASE.get(name, flag.default)),
                                        as_written(flag, other_value(flag)))
    change = str(expected)
    rundir.bind_run(str(tmp_path), config_of(old_text), {}, old_text, chief=True)
    checkpointed(str(tmp_path))
    before = snapshot(str(tmp_path))
    if not reference.resume_group(name).allowed:
        with pytest.raises(ValueError) as err:
            rundir.bind_run(str(tmp_path), config_of(new_text), {}, new_text, chief=True)
        assert str(err.value) == resume_policy.refusal_message(
            str(tmp_path), [expected], f"--flagfile={tmp_path}/flags.txt")
        assert change in str(err.value)
        assert snapshot(str(tmp_path)) == before
    else:
        rundir.bind_run(str(tmp_path), config_of(new_text), {}, new_text, chief=True)
        assert f"changes that keep its meaning: {change}." in absl_caplog.text
        assert (tmp_path / "flags.txt").read_text() == new_text


def test_booleans_round_trip_through_flags_txt():
    """flags.txt replays the run: its lines parse back into the same configs."""
    fv = parsed(TOOL, *(f"--{k}={v}" for k, v in BASE.items()), "--deterministic",
                "--noscale_lr")
    text = configs.flagfile_text(fv)
    assert "--deterministic" in text.splitlines() and "--noscale_lr" in text.splitlines()
    replayed = parsed(TOOL, *text.splitlines())
    assert configs.train_config(replayed) == configs.train_config(fv)
    assert configs.train_config(replayed).deterministic and not configs.train_config(
        replayed).scale_lr


def test_a_field_older_runs_lack_holds_its_default():
    """config.json of a run made before a setting existed: it ran with the default."""
    new = config_of(serialized(BASE))
    old = {**new, "train": {k: v for k, v in new["train"].items() if k != "label_smoothing"}}
    old.pop("distribution")
    assert resume_policy.compare(old, new) == ([], [])
    smoothed = {**new, "train": {**new["train"], "label_smoothing": 0.1}}
    (refused,), _ = resume_policy.compare(old, smoothed)
    assert str(refused) == "--label_smoothing: 0.0 -> 0.1"


def test_the_derived_bindings_are_refused():
    old = {"dataset_manifest_sha256": "aa", "labels": ["cat", "dog"], "input_pipelines": 1,
           "class_weights": [1.0, 1.0]}
    new = {"dataset_manifest_sha256": "bb", "labels": ["dog", "cat"], "input_pipelines": 2,
           "class_weights": [1.0, 4.0]}
    changes = [str(c) for c in resume_policy.compare_derived(old, new)]
    assert changes == [
        "--data_dir (the dataset's manifest sha256): aa -> bb",
        "--data_dir (the label map): ['cat', 'dog'] -> ['dog', 'cat']",
        "--class_weights/--data_dir (the per-class loss weights): [1.0, 1.0] -> [1.0, 4.0]",
        "--strategy/--worker_hosts (the number of input pipelines (one per worker)): 1 -> 2",
    ]


def records(image_size=8, epochs=1, labels=("cat", "dog"), digest="aa"):
    """Partial records, as the library and older runs may hold."""
    config = {"data": {"data_dir": "/data", "image_size": image_size, "global_batch_size": 64},
              "model": {"name": "small_cnn", "num_classes": len(labels)},
              "train": {"run_dir": "/runs/a", "epochs": epochs, "seed": 0},
              "labels": list(labels)}
    run = {"host": "h", "dataset_manifest_sha256": digest, "input_pipelines": 1}
    flagfile = serialized({**BASE, "image_size": image_size, "epochs": epochs})
    return config, run, flagfile


def checkpointed(run_dir) -> None:
    """Makes `run_dir` look as if its run saved a checkpoint: only then is it bound."""
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    with open(os.path.join(run_dir, "checkpoints", "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-1"\n')
    open(os.path.join(run_dir, "checkpoints", "ckpt-1.index"), "w").close()


def snapshot(run_dir):
    return {name: open(os.path.join(run_dir, name), "rb").read()
            for name in sorted(os.listdir(run_dir)) if name != "checkpoints"}


@pytest.mark.parametrize("through_tool", [True, False])
def test_a_refused_rerun_writes_nothing_and_names_old_and_new(tmp_path, through_tool):
    run_dir = str(tmp_path)
    config, run, flagfile = records()
    rundir.bind_run(run_dir, config, run, flagfile if through_tool else "", chief=True)
    checkpointed(run_dir)
    before = snapshot(run_dir)
    assert set(before) == ({"config.json", "run.json", "flags.txt"} if through_tool
                           else {"config.json", "run.json"})
    config2, run2, flagfile2 = records(image_size=10, labels=("dog", "cat"), digest="bb")
    with pytest.raises(ValueError) as err:
        rundir.bind_run(run_dir, config2, run2, flagfile2 if through_tool else "", chief=True)
    message = str(err.value)
    assert "\n" not in message
    assert "--image_size: 8 -> 10" in message
    assert "--data_dir (the dataset's manifest sha256): aa -> bb" in message
    assert "--data_dir (the label map): ['cat', 'dog'] -> ['dog', 'cat']" in message
    assert "Pass a new --run_dir" in message and "rerun with the old values" in message
    assert (f"--flagfile={run_dir}/flags.txt" if through_tool else "config.json") in message
    assert snapshot(run_dir) == before


def test_an_allowed_rerun_is_logged_and_recorded(tmp_path, absl_caplog):
    run_dir = str(tmp_path)
    rundir.bind_run(run_dir, *records(), chief=True)
    checkpointed(run_dir)
    rundir.bind_run(run_dir, *records(epochs=3), chief=True)
    assert "changes that keep its meaning: --epochs: 1 -> 3." in absl_caplog.text
    assert "--epochs=3" in (tmp_path / "flags.txt").read_text()
    assert '"epochs": 3' in (tmp_path / "config.json").read_text()


def test_a_worker_checks_but_never_writes(tmp_path):
    rundir.bind_run(str(tmp_path), *records(), chief=False)
    assert os.listdir(tmp_path) == []


def test_a_weights_file_edited_between_runs_is_refused(tmp_path):
    """Same --class_weights=FILE flag, other weights in the file: config.json binds them."""
    config, run, flagfile = records()
    rundir.bind_run(str(tmp_path), {**config, "class_weights": [1.0, 1.0]}, run, flagfile,
                    chief=True)
    checkpointed(str(tmp_path))
    with pytest.raises(ValueError, match=r"per-class loss weights\): \[1.0, 1.0\] -> \[1.0, 4.0"):
        rundir.bind_run(str(tmp_path), {**config, "class_weights": [1.0, 4.0]}, run, flagfile,
                        chief=True)


def test_records_of_a_start_that_saved_no_checkpoint_are_replaced(tmp_path, absl_caplog):
    """A first start that failed before its first checkpoint binds nothing: the fix the
    error suggests (another image size, another --pretrained) must be able to run."""
    run_dir = str(tmp_path)
    rundir.bind_run(run_dir, *records(), chief=True)
    rundir.bind_run(run_dir, *records(image_size=10, labels=("dog", "cat"), digest="bb"),
                    chief=True)
    assert "saved no checkpoint; this run replaces them" in absl_caplog.text
    assert '"image_size": 10' in (tmp_path / "config.json").read_text()


def identity(sha256: str, described: str) -> dict:
    return {"dataset": {"sha256": sha256, "described": described}, "input_pipelines": 1}


def test_the_data_is_bound_by_content_and_named_in_words():
    same = resume_policy.compare_derived(identity("aa", "10 classes"), identity("aa", "10 classes"))
    assert same == []  # rebuilt elsewhere, at another time: the same shards
    (grown,) = resume_policy.compare_derived(
        identity("aa", "10 classes, single-label, records: train 1438, validation 359"),
        identity("bb", "10 classes, single-label, records: train 1500, validation 359"))
    assert str(grown) == ("--data_dir (the data): 10 classes, single-label, records: train 1438, "
                          "validation 359 -> 10 classes, single-label, records: train 1500, "
                          "validation 359")
    (swapped,) = resume_policy.compare_derived(identity("aa", "2 classes"),
                                               identity("bb", "2 classes"))
    assert str(swapped) == ("--data_dir (the data; the same counts, other images or labels): "
                            "2 classes -> 2 classes")
