"""Transfer learning: head-only epochs, then fine-tuning of all or the last K blocks.

The phase is a pure function of the global step (phase 1, head only, for
step < freeze_epochs * steps_per_epoch; phase 2 after), so a resumed run lands in the
right phase with the right trainable set without storing anything extra.

Freezing uses Keras 3 semantics: `layer.trainable = False` removes the layer's weights
from `model.trainable_variables` AND runs its BatchNormalization in inference mode (moving
statistics untouched), also inside the nested "backbone" model. The trainable set is read
when a step is traced, so the caller must retrace its compiled step when the phase
changes (`TransferPlan.phase` is meant to be a tf.function trace key).

Blocks (the unit of `--unfreeze=last:K` and of `--layer_decay`) are declared by each
model family; `models/blocks.py` describes them and the registry finds a model's.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re

import keras

from visiontrain.config import TrainConfig
from visiontrain.models.blocks import all_layers
from visiontrain.models.head import split_backbone_head
from visiontrain.models.registry import backbone_blocks

PHASE_HEAD = 1
PHASE_FINE_TUNE = 2
_UNFREEZE = re.compile(r"all|last:(\d+)")


def parse_unfreeze(spec: str) -> int | None:
    """`--unfreeze` as the number of top blocks to fine-tune; None means all.

    Raises:
      ValueError: Unless `spec` is "all" or "last:K" with K >= 1.
    """
    match = _UNFREEZE.fullmatch(spec)
    if not match or (match.group(1) is not None and int(match.group(1)) < 1):
        raise ValueError(
            f"--unfreeze={spec!r} is not understood; use 'all' or 'last:K' with K >= 1 "
            "(the K backbone blocks nearest the head, e.g. last:2)."
        )
    return int(match.group(1)) if match.group(1) else None


@dataclasses.dataclass(frozen=True)
class TransferPlan:
    """Which weights train at each step.

    Attributes:
      boundary: The first step of phase 2 (0: no head-only phase).
      unfreeze_last: Top blocks fine-tuned in phase 2; None for the whole backbone.
      freeze_bn: Keep every backbone BatchNormalization frozen in phase 2 too.
    """

    boundary: int = 0
    unfreeze_last: int | None = None
    freeze_bn: bool = False

    def phase(self, step: int) -> int:
        """PHASE_HEAD before `boundary`, PHASE_FINE_TUNE from it on."""
        return PHASE_HEAD if step < self.boundary else PHASE_FINE_TUNE

    def steps_to_phase_change(self, step: int) -> int:
        """Steps a compiled loop may run from `step` without crossing the boundary."""
        return self.boundary - step if step < self.boundary else 1 << 30


def make_plan(config: TrainConfig, steps_per_epoch: int) -> TransferPlan:
    """The run's `TransferPlan` (TrainConfig has checked --freeze_epochs against --epochs).

    Raises:
      ValueError: For a bad --unfreeze, or a --layer_decay outside (0, 1].
    """
    if not 0.0 <= config.layer_decay <= 1.0:
        raise ValueError(
            f"--layer_decay={config.layer_decay} must be in (0, 1] (0 turns it off); "
            "typical values are 0.65-0.9."
        )
    return TransferPlan(
        boundary=config.freeze_epochs * steps_per_epoch,
        unfreeze_last=parse_unfreeze(config.unfreeze),
        freeze_bn=config.freeze_bn,
    )


def set_phase(model: keras.Model, plan: TransferPlan, phase: int) -> None:
    """Sets the trainable flags of `model` for `phase` (idempotent).

    Phase 1 freezes the whole backbone (BatchNorm in inference mode). Phase 2 unfreezes
    all of it or its last `plan.unfreeze_last` blocks, optionally keeping BatchNorm frozen.
    The head always trains.

    Raises:
      ValueError: If --unfreeze=last:K asks for more blocks than the backbone has.
    """
    (backbone,), head = split_backbone_head(model)
    for layer in head:
        layer.trainable = True
    if phase == PHASE_HEAD:
        backbone.trainable = False
        return
    backbone.trainable = True
    if plan.unfreeze_last is not None:
        blocks = backbone_blocks(model)
        if plan.unfreeze_last > len(blocks):
            raise ValueError(
                f"--unfreeze=last:{plan.unfreeze_last} but the {model.name} backbone has "
                f"{len(blocks)} blocks ({blocks[0].name} .. {blocks[-1].name}); use "
                f"last:{len(blocks)} or all."
            )
        for block in blocks[: len(blocks) - plan.unfreeze_last]:
            for layer in block.layers:
                layer.trainable = False
    if plan.freeze_bn:
        # keras-hub backbones nest their BatchNormalization inside blocks.
        for layer in all_layers(backbone):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def describe_phase(model: keras.Model, plan: TransferPlan, phase: int) -> str:
    """A log line describing what trains in `phase`."""
    trainable = sum(int(math.prod(v.shape)) for v in model.trainable_variables)
    what = "the head only, backbone frozen" if phase == PHASE_HEAD else (
        "the whole backbone and the head" if plan.unfreeze_last is None
        else f"the last {plan.unfreeze_last} backbone blocks and the head")
    bn = " (BatchNorm frozen)" if plan.freeze_bn and phase == PHASE_FINE_TUNE else ""
    return f"phase {phase}: training {what}{bn}, {trainable:,} trainable parameters"



def enter_phase(model: keras.Model, plan: TransferPlan, step: int, active: int | None) -> int:
    """Sets the trainable flags for the phase of `step` if it is not `active`; returns it.

    The caller passes the returned phase as a trace key of its compiled step, so the step
    is retraced with the new trainable set.
    """
    phase = plan.phase(step)
    if phase != active:
        set_phase(model, plan, phase)
        # A run without transfer flags has one phase: nothing worth a line.
        if plan != TransferPlan():
            logging.info("Step %d: %s.", step, describe_phase(model, plan, phase))
    return phase
