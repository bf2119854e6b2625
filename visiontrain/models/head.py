"""The classification head shared by every model, and the backbone/head split.

Every visiontrain model is `images -> input scaling -> backbone -> head`, where the
backbone is one nested `keras.Model` named "backbone" (the Model Garden / keras-hub
layout). Transfer learning freezes it with `model.get_layer("backbone").trainable = False`
and the head stays trainable; `split_backbone_head` returns the two groups.
"""

from __future__ import annotations

import keras

BACKBONE_NAME = "backbone"
PRE_LOGITS_NAME = "pre_logits"
LOGITS_NAME = "logits"


def apply_head(features: keras.KerasTensor, num_classes: int, dropout: float) -> keras.KerasTensor:
    """Global average pool -> dropout -> dense logits.

    The dense kernel starts tiny (truncated normal, stddev 0.01, as in Model Garden's
    classification head): initial logits are ~0, so the first loss is ~log(num_classes) and
    a pretrained backbone is not hit by large random gradients when fine-tuning starts,
    while (unlike an all-zero kernel) gradients still reach the backbone on step one.
    The logits layer computes in float32 so mixed-precision runs get float32 logits.

    Args:
      features: Backbone feature map [batch, h, w, channels].
      num_classes: Number of output logits.
      dropout: Dropout rate before the dense layer.

    Returns:
      float32 logits [batch, num_classes].
    """
    x = keras.layers.GlobalAveragePooling2D(name=PRE_LOGITS_NAME)(features)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
        dtype="float32",
        name=LOGITS_NAME,
    )(x)


def split_backbone_head(model: keras.Model) -> tuple[list[keras.Layer], list[keras.Layer]]:
    """Splits a visiontrain model into (backbone layers, head layers).

    Args:
      model: A model from `build_model`.

    Returns:
      `([backbone sub-model], [pre_logits, head_dropout, logits])`. Input scaling has no
      trainable weights and belongs to neither group.
    """
    try:
        backbone = model.get_layer(BACKBONE_NAME)
    except ValueError as e:
        raise ValueError(
            f"Model {model.name!r} has no layer named {BACKBONE_NAME!r}; "
            "split_backbone_head expects a model from visiontrain.models.build_model."
        ) from e
    head_names = (PRE_LOGITS_NAME, "head_dropout", LOGITS_NAME)
    return [backbone], [model.get_layer(n) for n in head_names]
