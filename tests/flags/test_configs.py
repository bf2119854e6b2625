"""Flags to configs: one source of defaults, one conversion, records that read back."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from absl import flags

from tests.helpers.flagvalues import parsed
from visiontrain import config as config_lib
from visiontrain.config import (
    ConvertConfig,
    DataConfig,
    DistributionConfig,
    ExportConfig,
    ModelConfig,
    TrainConfig,
    schema,
)
from visiontrain.flags import configs, convert, definitions
from visiontrain.flags import export as export_flags

TRAIN_GROUPS = (definitions.define_data_flags, definitions.define_model_flags,
                definitions.define_training_flags, definitions.define_distribution_flags)
# Config fields no flag sets: filled from elsewhere (num_classes from the data's label
# map) or library-only knobs.
NOT_FLAGS = {(DataConfig, "cache_eval"), (DataConfig, "threadpool_size"),
             (ModelConfig, "num_classes")}


# Each tool's flag groups, the flags it must be given, and the configs it builds.
TOOLS = {
    "train": (TRAIN_GROUPS, ("--data_dir=shards", "--run_dir=run"), lambda fv: [
        (configs.data_config(fv), DataConfig(data_dir="shards")),
        (configs.model_config(fv), ModelConfig()),
        (configs.train_config(fv), TrainConfig(run_dir="run")),
        (configs.distribution_config(fv), DistributionConfig()),
    ]),
    "export": ((export_flags.define_export_flags,), ("--run_dir=run", "--export_dir=out"),
               lambda fv: [(configs.export_config(fv), ExportConfig(run_dir="run",
                                                                    export_dir="out"))]),
    "data": ((convert.define_convert_flags,), ("--source=images", "--output=shards"),
             lambda fv: [(configs.convert_config(fv), ConvertConfig(source="images",
                                                                    output="shards"))]),
}


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_flag_defaults_build_the_dataclass_defaults(tool):
    groups, required, build = TOOLS[tool]
    for from_flags, from_dataclass in build(parsed(groups, *required)):
        assert from_flags == from_dataclass


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_config_field_has_a_flag(tool):
    groups, required, build = TOOLS[tool]
    fv = parsed(groups, *required)
    for config, _ in build(fv):
        cls = type(config)
        missing = [f.name for f in dataclasses.fields(cls)
                   if schema.flag_of(f) not in fv
                   and (cls, f.name) not in NOT_FLAGS]
        assert not missing, f"{cls.__name__} fields without a flag: {missing}"
        library_only = {(cls, f.name) for f in dataclasses.fields(cls)
                        if schema.flag_of(f) is None}
        assert library_only <= NOT_FLAGS, library_only - NOT_FLAGS


def test_flags_fill_the_fields_with_their_types():
    fv = parsed(TRAIN_GROUPS, "--data_dir=tfds:mnist", "--run_dir=run", "--model=small_cnn",
                "--step_decay_epochs=3,6", "--worker_hosts=a:1,b:2", "--seed=7",
                "--augment_preset=light", "--profile_steps=2,4")
    train = configs.train_config(fv)
    assert train.step_decay_epochs == (3, 6) and train.profile_steps == (2, 4)
    assert train.seed == 7 and configs.data_config(fv).seed == 7
    assert configs.distribution_config(fv).worker_hosts == ("a:1", "b:2")
    assert configs.model_config(fv).name == "small_cnn"
    # The preset is resolved in the conversion: the config names the ops it runs.
    from visiontrain.augment.policy import PRESETS
    assert train.augment == PRESETS["light"] != ""
    assert configs.data_config(fv).data_dir == "tfds:mnist"


@pytest.mark.parametrize("argv, message", [
    (("--step_decay_epochs=3,x",), r"--step_decay_epochs=3,x: expected whole numbers"),
    (("--profile_steps=9,2",), r"--profile_steps=9,2: expected two step numbers A,B"),
    (("--augment=flip", "--augment_preset=light"), "mutually exclusive"),
])
def test_bad_values_are_refused_by_the_conversion(argv, message):
    fv = parsed(TRAIN_GROUPS, "--data_dir=d", "--run_dir=r", *argv)
    with pytest.raises(ValueError, match=message):
        configs.train_config(fv)


def test_a_required_config_field_names_its_flag():
    fv = parsed((convert.define_convert_flags,), "--source=images")
    with pytest.raises(ValueError, match="^--output must be given"):
        configs.convert_config(fv)


def test_paths_are_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = DataConfig(data_dir="shards", tfds_data_dir="tfds")
    assert data.data_dir == str(tmp_path / "shards") and data.tfds_data_dir == str(tmp_path /
                                                                                     "tfds")
    assert DataConfig(data_dir="tfds:mnist/3.0.1").data_dir == "tfds:mnist/3.0.1"
    assert DataConfig(data_dir="gs://bucket/shards").data_dir == "gs://bucket/shards"
    assert ModelConfig(pretrained="imagenet").pretrained == "imagenet"
    assert ModelConfig(pretrained="w.weights.h5").pretrained == str(tmp_path / "w.weights.h5")
    export = ExportConfig(run_dir="../run", export_dir="models/x")
    assert export.run_dir == str(tmp_path.parent / "run")
    assert export.export_dir == str(tmp_path / "models" / "x")
    assert TrainConfig(run_dir="r").final_weights == ""


@pytest.mark.parametrize("config", [
    DataConfig(data_dir="/d", tf_data_service="grpc://h:5050"),
    ModelConfig(name="small_cnn", num_classes=3),
    TrainConfig(run_dir="/r", step_decay_epochs=(3, 6), profile_steps=(1, 2)),
    DistributionConfig(worker_hosts=("a:1", "b:2")),
    ExportConfig(run_dir="/r", export_dir="/e"),
    ConvertConfig(source="/s", output="/o"),
], ids=lambda c: type(c).__name__)
def test_to_dict_reads_back_through_json(config):
    text = json.dumps(config_lib.to_dict(config))
    assert config_lib.from_dict(type(config), json.loads(text)) == config


def test_from_dict_refuses_unknown_keys():
    values = config_lib.to_dict(DataConfig(data_dir="/d"))
    with pytest.raises(ValueError, match=r"Unknown DataConfig keys \['typo'\]"):
        config_lib.from_dict(DataConfig, {**values, "typo": 1})


def test_load_run_reads_config_json_through_from_dict(tmp_path):
    """A config.json with a key DataConfig does not know is refused, not half-read."""
    from visiontrain.training.rundir import load_run

    record = {"data": {**config_lib.to_dict(DataConfig(data_dir=str(tmp_path))), "typo": 1},
              "model": config_lib.to_dict(ModelConfig(name="small_cnn", num_classes=2)),
              "labels": ["a", "b"]}
    (tmp_path / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="Unknown DataConfig keys"):
        load_run(str(tmp_path))


def test_a_bad_dispatcher_address_is_refused_by_the_config():
    with pytest.raises(ValueError, match="grpc://HOST:PORT"):
        DataConfig(data_dir="/d", tf_data_service="http://h:1")
    assert os.path.isabs(DataConfig(data_dir="d", tf_data_service="grpc://h:1").data_dir)


def test_flagfile_text_replays_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fv = parsed(TRAIN_GROUPS, "--data_dir=shards", "--run_dir=run", "--pretrained=imagenet",
                "--epochs=3")
    text = configs.flagfile_text(fv).splitlines()
    assert f"--data_dir={tmp_path / 'shards'}" in text
    assert f"--run_dir={tmp_path / 'run'}" in text
    assert "--pretrained=imagenet" in text and "--epochs=3" in text
    replayed = flags.FlagValues()
    for define in TRAIN_GROUPS:
        define(replayed)
    replayed(["prog", *text])
    assert configs.train_config(replayed) == configs.train_config(fv)
    assert configs.data_config(replayed) == configs.data_config(fv)


def test_hub_preset_names_are_kept_and_preset_directories_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ModelConfig(pretrained="hub:vit_base_patch16_224_imagenet").pretrained == (
        "hub:vit_base_patch16_224_imagenet")
    assert ModelConfig(pretrained="hub:kaggle://keras/vit").pretrained == "hub:kaggle://keras/vit"
    assert ModelConfig(pretrained="hub:./presets/vit").pretrained == (
        f"hub:{tmp_path}/presets/vit")


@pytest.mark.parametrize("cls", [ConvertConfig, DataConfig, DistributionConfig, ExportConfig,
                                 ModelConfig, TrainConfig], ids=lambda c: c.__name__)
def test_every_field_is_declared_once(cls):
    """A field is a declaration (help, section, bounds) or filled from another one's flag."""
    declared = {schema.flag_of(f) for run_cls in config_lib.RUN_CONFIGS.values()
                for f in dataclasses.fields(run_cls) if schema.declares_flag(f)}
    for field in dataclasses.fields(cls):
        if schema.setting_of(field) is None:
            assert schema.flag_of(field) in declared, field.name
        else:
            assert schema.setting_of(field).help.endswith((".", ")")), field.name


def test_a_field_without_a_declaration_is_named():
    undeclared = dataclasses.make_dataclass("Undeclared", [("knob", int, 0)])
    with pytest.raises(ValueError, match="'knob' is undeclared"):
        schema.flag_of(dataclasses.fields(undeclared)[0])


@pytest.mark.parametrize("argv, message", [
    (("--crop_area_min=0.9", "--crop_area_max=0.5"),
     r"--crop_area_min=0.9 exceeds --crop_area_max=0.5"),
    (("--data_dir=tfds:mnist", "--tf_data_service=grpc://h:5050"),
     r"--tf_data_service serves our TFRecord shards only"),
])
def test_cross_field_checks_are_the_configs(argv, message):
    fv = parsed(TRAIN_GROUPS, "--data_dir=d", "--run_dir=r", *argv)
    with pytest.raises(ValueError, match=message):
        configs.data_config(fv)


def test_bounds_are_flag_validators_naming_the_interval():
    with pytest.raises(flags.IllegalFlagValueError, match=r"--label_smoothing must be in "
                                                          r"\[0, 0.5\]"):
        parsed(TRAIN_GROUPS, "--data_dir=d", "--run_dir=r", "--label_smoothing=0.7")
    with pytest.raises(flags.IllegalFlagValueError, match=r"--val_fraction must be in \(0, 1\)"):
        parsed((convert.define_convert_flags,), "--val_fraction=1")


@pytest.mark.parametrize("default, details, message", [
    ("c", dict(choices=("a", "b")), r"Default 'c' is not one of \('a', 'b'\)"),
    (5, dict(min=0, below=1), r"Default 5 is not in \[0, 1\)"),
])
def test_a_declaration_its_own_flag_would_refuse_is_an_error(default, details, message):
    section = schema.Section("test", "A section of this test")
    with pytest.raises(ValueError, match=message):
        section(default, help="A setting.", **details)
