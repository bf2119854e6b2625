"""Blocks: the unit of `--unfreeze=last:K` and of `--layer_decay`, declared per family.

A block is a group of consecutive backbone layers. Each model family says how its layers
name their blocks (as timm's `group_matcher` does), next to its builder: `resnet.py` for
our ResNets and small_cnn, `backbones.py` for each keras.applications family. The
registry hands the rule out with the family's `ModelSpec`. The rules, by family:

  resnet, cifar_resnet:  stage2_block3_*                 (one residual block)
  small_cnn:             stage2_*                        (conv-bn-relu-pool)
  keras_resnet (v1/v2):  conv4_block6_*
  efficientnetv2:        block6b_*
  mobilenet_v1:          conv_dw_13*, conv_pw_13*  (one separable block, "conv_13")
  mobilenet_v3:          expanded_conv_10_*
  convnext:              *_stage_2_block_5_*, *_downsampling_block_2*

A layer without weights, or whose name matches none of its family's rules (stems, top
convs, final norms), joins the block before it; those before the first block form the
"stem" block.
"""

from __future__ import annotations

import dataclasses
import re

import keras

STEM = "stem"


@dataclasses.dataclass(frozen=True)
class Block:
    """A named group of consecutive backbone layers."""

    name: str
    layers: tuple[keras.Layer, ...]


@dataclasses.dataclass(frozen=True)
class BlockNames:
    """How one family names its blocks: regexes matched at the start of a layer name.

    The first pattern that matches wins; its groups, joined, name the block (so MobileNet
    v1's "conv_dw_13" and "conv_pw_13" both belong to "conv_13").
    """

    patterns: tuple[re.Pattern, ...]

    @classmethod
    def of(cls, *regexes: str) -> BlockNames:
        """Rules from regex strings, tried in the order given."""
        return cls(tuple(re.compile(r) for r in regexes))

    def key(self, layer_name: str) -> str | None:
        """The block a layer belongs to by its name, or None if no rule matches."""
        for pattern in self.patterns:
            match = pattern.match(layer_name)
            if match:
                return "".join(match.groups())
        return None

    def group(self, backbone: keras.Model) -> list[Block]:
        """The layers of `backbone` as blocks in topological order, the stem first."""
        groups: dict[str, list[keras.Layer]] = {}
        current = STEM
        for layer in backbone.layers:
            # Weightless layers (pads, adds, stage outputs) never open a block.
            if layer.weights:
                current = self.key(layer.name) or current
            groups.setdefault(current, []).append(layer)
        return [Block(name, tuple(layers)) for name, layers in groups.items()]
