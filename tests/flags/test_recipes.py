"""Every recipe in configs/ is a valid visiontrain-train flagfile that says what was measured."""

from __future__ import annotations

import dataclasses
import glob
import os

import keras
import pytest

from tests.flags.test_configs import TRAIN_GROUPS, parsed
from tests.helpers.runs import REPO
from visiontrain.flags import configs
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
