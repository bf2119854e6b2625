"""Every recipe in configs/ is a valid visiontrain-train flagfile that says what was measured."""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import keras
import pytest

from tests.flags.test_configs import TRAIN_GROUPS, parsed
from tests.helpers.runs import REPO, run_train
from visiontrain.config import ModelConfig
from visiontrain.flags import configs
from visiontrain.models.hub import HUB_BACKBONE_NAME
from visiontrain.models.registry import build_model, model_spec

RECIPES = sorted(glob.glob(os.path.join(REPO, "configs", "*.cfg")))


def test_the_recipes_are_there():
    names = {os.path.basename(path) for path in RECIPES}
    assert {"digits_demo.cfg", "hymenoptera_mobilenet.cfg", "cifar10_resnet20.cfg",
            "cifar10_resnet56.cfg", "imagenet_resnet50_90ep.cfg",
            "finetune_efficientnetv2_b0.cfg", "finetune_mobilenetv3_large.cfg",
            "finetune_vit_b16.cfg"} <= names


def recipe_flags(path):
    return parsed(TRAIN_GROUPS, f"--flagfile={path}", "--data_dir=shards", "--run_dir=run")


@pytest.mark.parametrize("path", RECIPES, ids=os.path.basename)
def test_recipe_parses_into_configs_and_says_what_was_measured(path):
    fv = recipe_flags(path)
    configs.data_config(fv), configs.model_config(fv), configs.train_config(fv)
    header = "\n".join(line for line in open(path) if line.startswith("#")).lower()
    assert "measured" in header, f"{path}: say what was measured here, or that nothing was"


# Slow: ViT-B/16 and ResNet-50 have tens of millions of weights to initialise.
@pytest.mark.slow
@pytest.mark.parametrize("path", RECIPES, ids=os.path.basename)
def test_recipe_model_builds_and_takes_its_image_size(path):
    """The recipe's --model exists and builds (at its smallest size, without weights: the
    recipes' weights are downloads or local files), and its --image_size is one it takes."""
    fv = recipe_flags(path)
    model_config = configs.model_config(fv)
    spec, size = model_spec(model_config.name), configs.data_config(fv).image_size
    assert size >= spec.min_image_size and size % spec.image_size_multiple == 0, size
    smallest = -(-spec.min_image_size // spec.image_size_multiple) * spec.image_size_multiple
    keras.backend.clear_session()
    model = build_model(dataclasses.replace(model_config, pretrained="", num_classes=2),
                        smallest)
    assert model.output_shape == (None, 2)


@pytest.mark.slow
def test_vit_recipe_trains_from_a_local_preset_end_to_end(digits, tmp_path):
    """finetune_vit_b16.cfg's flags and its --pretrained=hub:DIR path, through the tool,
    on the tiny test ViT (configs/README.md's ants/bees run, at digits size)."""
    pytest.importorskip("keras_hub")
    donor = build_model(ModelConfig("vit_tiny_test", num_classes=10), 32)
    preset = str(tmp_path / "preset")
    donor.get_layer("backbone").get_layer(HUB_BACKBONE_NAME).save_to_preset(preset)
    run_dir = str(tmp_path / "run")
    result = run_train(digits, run_dir, f"--flagfile={REPO}/configs/finetune_vit_b16.cfg",
                       "--model=vit_tiny_test", "--image_size=32", f"--pretrained=hub:{preset}",
                       "--epochs=1", "--warmup_epochs=0")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"Loaded the keras-hub preset {preset} into vit_tiny_test" in result.stdout
    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert results["step"] == 23 and results["validation"]["examples"] == 297
