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
  keras-hub families:    see `hub.py` (ViT's vit_encoder/transformer_block_7, ...)

keras-hub backbones keep their blocks inside container layers (ViT's whole encoder is one
layer): a family lists the containers to descend into, and its rules then match the
layer's path from the backbone, e.g. "hub_backbone/vit_encoder/transformer_block_7".

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
    """How one family names its blocks: regexes matched at the start of a layer's path.

    The first pattern that matches wins; its groups, joined, name the block (so MobileNet
    v1's "conv_dw_13" and "conv_pw_13" both belong to "conv_13"). A layer whose path
    fully matches a `descend` regex is replaced by its sublayers.
    """

    patterns: tuple[re.Pattern, ...]
    descend: tuple[re.Pattern, ...] = ()

    @classmethod
    def of(cls, *regexes: str, descend: tuple[str, ...] = ()) -> BlockNames:
        """Rules from regex strings, tried in the order given."""
        return cls(tuple(re.compile(r) for r in regexes),
                   tuple(re.compile(r) for r in descend))

    def key(self, layer_path: str) -> str | None:
        """The block a layer belongs to by its path, or None if no rule matches."""
        for pattern in self.patterns:
            match = pattern.match(layer_path)
            if match:
                return "".join(match.groups())
        return None

    def walk(self, backbone: keras.Model) -> list[tuple[str, keras.Layer]]:
        """(path, layer) of the backbone's layers in order, containers opened."""
        return self._walk(backbone.layers, "")

    def _walk(self, layers, prefix: str) -> list[tuple[str, keras.Layer]]:
        found = []
        for layer in layers:
            path = prefix + layer.name
            if any(p.fullmatch(path) for p in self.descend):
                found += self._walk(sublayers(layer), path + "/")
            else:
                found.append((path, layer))
        return found

    def group(self, backbone: keras.Model) -> list[Block]:
        """The layers of `backbone` as blocks in topological order, the stem first."""
        groups: dict[str, list[keras.Layer]] = {}
        current = STEM
        for path, layer in self.walk(backbone):
            # Weightless layers (pads, adds, stage outputs) never open a block.
            if layer.weights:
                current = self.key(path) or current
            groups.setdefault(current, []).append(layer)
        return [Block(name, tuple(layers)) for name, layers in groups.items()]


def sublayers(layer: keras.Layer) -> list[keras.Layer]:
    """The direct sublayers of `layer`, in the order they were created.

    A functional model lists them as `layers`; a subclassed Keras 3 layer (keras-hub's
    encoders) has no public accessor, and `_flatten_layers` is the one Keras itself uses.
    """
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    return list(layer._flatten_layers(include_self=False, recursive=False))


def all_layers(layer: keras.Layer) -> list[keras.Layer]:
    """`layer` and every layer nested in it, depth first."""
    return [layer] + [nested for sub in sublayers(layer) for nested in all_layers(sub)]
