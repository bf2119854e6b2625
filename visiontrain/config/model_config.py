"""ModelConfig: which network to build; the class count comes from the data's label map."""

from __future__ import annotations

import dataclasses

from visiontrain.config.paths import absolute_paths
from visiontrain.config.schema import NETWORK, Section

MODEL = Section("model", "Which network, and how it starts")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which network to build; the class count comes from the data's label map."""

    # The flag is --model: `name` would say nothing on a command line.
    name: str = MODEL("resnet50", help="Registry name of the network (MobileNet v1 also takes "
                      "any width, e.g. mobilenet_v1_0.35).", resume=NETWORK, flag="model")
    num_classes: int = MODEL(0, help="Outputs of the head (0: the data's class count).",
                             resume=NETWORK, flag=None)
    dropout: float = MODEL(0.0, help="Dropout before the classifier.", resume=NETWORK,
                           min=0.0, max=0.95)
    # Stochastic depth of the deepest ResNet block, linear in depth from 0 (0: off).
    drop_path: float = MODEL(0.0, help="Stochastic depth for our ResNets and keras-hub's Swin: "
                             "the deepest block's residual branch is dropped at this rate, "
                             "earlier blocks linearly less (0: off).", resume=NETWORK,
                             min=0.0, max=0.9)
    zero_init_residual: bool = MODEL(True, help="Zero-init the last BN gamma of each block.",
                                     resume=NETWORK)
    sync_bn: bool = MODEL(False, help="Synchronise BatchNorm statistics across replicas.",
                          resume=NETWORK)
    pretrained: str = MODEL("", help="'' (random init), 'imagenet', hub:PRESET (keras-hub "
                            "models: a preset name online, or a preset or timm checkpoint "
                            "directory), a weights file (.h5 / .weights.h5: a whole model or a "
                            "backbone), or a visiontrain run directory (its best.weights.h5).",
                            resume=NETWORK, path=True)

    def __post_init__(self):
        absolute_paths(self)
