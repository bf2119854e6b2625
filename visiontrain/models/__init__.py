"""Model builders (ResNet family, small CNN, pretrained backbones) behind one registry."""

from visiontrain.models.head import split_backbone_head
from visiontrain.models.registry import (
    ModelSpec,
    available_models,
    build_model,
    model_spec,
)

__all__ = ["ModelSpec", "available_models", "build_model", "model_spec", "split_backbone_head"]
