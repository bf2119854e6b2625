"""Model builders (ResNet family, small CNN, pretrained backbones) behind one registry."""

# Each family module registers its models when imported (see registry.py); importing them
# here, before anything reads the registry, makes every name known to every importer.
from visiontrain.models import backbones, hub, resnet  # noqa: F401
from visiontrain.models.head import split_backbone_head
from visiontrain.models.registry import (
    ModelSpec,
    available_models,
    build_model,
    model_spec,
)

__all__ = ["ModelSpec", "available_models", "build_model", "model_spec", "split_backbone_head"]
