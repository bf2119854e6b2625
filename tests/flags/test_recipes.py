"""Every recipe in configs/ is a valid visiontrain-train flagfile that says what was measured."""

from __future__ import annotations

import glob
import os

import pytest

from tests.flags.test_configs import TRAIN_GROUPS, parsed
from tests.helpers.runs import REPO
from visiontrain.flags import configs

RECIPES = sorted(glob.glob(os.path.join(REPO, "configs", "*.cfg")))


def test_the_recipes_are_there():
    names = {os.path.basename(path) for path in RECIPES}
    assert {"digits_demo.cfg", "hymenoptera_mobilenet.cfg", "cifar10_resnet20.cfg",
            "cifar10_resnet56.cfg", "imagenet_resnet50_90ep.cfg",
            "finetune_efficientnetv2_b0.cfg", "finetune_mobilenetv3_large.cfg"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=os.path.basename)
def test_recipe_parses_into_configs_and_says_what_was_measured(path):
    fv = parsed(TRAIN_GROUPS, f"--flagfile={path}", "--data_dir=shards", "--run_dir=run")
    configs.data_config(fv), configs.model_config(fv), configs.train_config(fv)
    header = "\n".join(line for line in open(path) if line.startswith("#")).lower()
    assert "measured" in header, f"{path}: say what was measured here, or that nothing was"
