"""Optimisers built from the training config, with layer-wise learning-rate decay.

Layer decay multiplies each variable's learning rate, not its gradient: Adam/AdamW
normalise the gradient's scale away, so gradient scaling would do nothing there. The
optimizers below pass `lr * multiplier` to the stock update of each variable and apply
decoupled weight decay with the same per-variable LR, which is exactly a per-variable
learning rate for SGD (with or without momentum / Nesterov), AdamW, RMSProp, LAMB and
Lion alike.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from visiontrain.config import TrainConfig
from visiontrain.models.registry import backbone_blocks

OPTIMIZERS = ("sgd", "adamw", "rmsprop", "lamb", "lion")


def _stock_optimizers(config: TrainConfig) -> dict[str, tuple[type, dict]]:
    """--optimizer -> (Keras core class, its arguments beyond LR, decay and clipping).

    RMSProp follows the TF EfficientNet / MobileNet recipes (decay 0.9, momentum 0.9,
    epsilon 1e-3, inside the square root as in TF); LAMB and Lion take Keras' betas.
    """
    return {
        "sgd": (keras.optimizers.SGD, dict(momentum=config.momentum, nesterov=config.nesterov)),
        "adamw": (keras.optimizers.AdamW, {}),
        "rmsprop": (keras.optimizers.RMSprop, dict(rho=0.9, momentum=config.momentum,
                                                   epsilon=1e-3)),
        "lamb": (keras.optimizers.Lamb, {}),
        "lion": (keras.optimizers.Lion, {}),
    }


def make_optimizer(
    config: TrainConfig, schedule, model: keras.Model
) -> keras.optimizers.Optimizer:
    """SGD, AdamW, RMSProp, LAMB or Lion with decoupled weight decay that skips biases and BN.

    Decay is applied by the optimizer (decoupled), never as an L2 term in the loss,
    and only to kernels: decaying BN scales and biases hurts accuracy (Goyal et al.).
    Every one is the Keras core optimizer; Keras applies the decay for all of them the
    same way, `w -= lr * weight_decay * w` before the update.
    """
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown --optimizer={config.optimizer!r}; use one of {OPTIMIZERS}.")
    common = dict(
        learning_rate=schedule,
        weight_decay=config.weight_decay or None,
        global_clipnorm=config.clip_norm or None,
    )
    base, arguments = _stock_optimizers(config)[config.optimizer]
    optimizer = optimizer_class(base, config)(**arguments, **common)
    if config.weight_decay:
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if len(v.shape) <= 1]
        )
    if config.dtype == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def layer_decay_multipliers(model: keras.Model, decay: float) -> dict[int, float]:
    """LR multipliers by variable id: 1 for the head, decay**d for the block d from the top.

    The top backbone block gets `decay`, the stem `decay ** len(blocks)` (BEiT's rule with
    the head as depth 0). Keys are `id(variable)` of the model's Keras variables.
    """
    multipliers = {id(v): 1.0 for v in model.weights}
    blocks = backbone_blocks(model)
    for depth, block in enumerate(reversed(blocks), start=1):
        for layer in block.layers:
            for variable in layer.weights:
                multipliers[id(variable)] = math.pow(decay, depth)
    return multipliers


class _LayerDecayMixin:
    """Per-variable LR multipliers for a stock Keras optimizer.

    Set `lr_multipliers` ({id(keras variable): float}, missing means 1) before `build`.
    """

    lr_multipliers: dict[int, float] | None = None

    def build(self, var_list):
        if self.lr_multipliers is None:
            raise ValueError(
                "Set optimizer.lr_multipliers (optim.attach_layer_decay) before "
                "building a layer-decay optimizer.")
        super().build(var_list)
        # Indexed like the optimizer's slots, which is how update_step finds a variable.
        self._lr_scale = [self.lr_multipliers.get(id(v), 1.0) for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        scale = self._lr_scale[self._get_variable_index(variable)]
        learning_rate = tf.cast(learning_rate, variable.dtype) * scale
        if self.weight_decay is not None and self._use_weight_decay(variable):
            variable.assign_sub(variable * tf.cast(self.weight_decay, variable.dtype)
                                * learning_rate)
        super().update_step(gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables):
        """Done per variable in update_step, with the variable's own learning rate."""


@keras.saving.register_keras_serializable(package="visiontrain")
class LayerDecaySGD(_LayerDecayMixin, keras.optimizers.SGD):
    """SGD with per-variable learning-rate multipliers."""


@keras.saving.register_keras_serializable(package="visiontrain")
class LayerDecayAdamW(_LayerDecayMixin, keras.optimizers.AdamW):
    """AdamW with per-variable learning-rate multipliers."""


@keras.saving.register_keras_serializable(package="visiontrain")
class LayerDecayRMSprop(_LayerDecayMixin, keras.optimizers.RMSprop):
    """RMSprop with per-variable learning-rate multipliers."""


@keras.saving.register_keras_serializable(package="visiontrain")
class LayerDecayLamb(_LayerDecayMixin, keras.optimizers.Lamb):
    """LAMB with per-variable learning-rate multipliers (the trust ratio scales each)."""


@keras.saving.register_keras_serializable(package="visiontrain")
class LayerDecayLion(_LayerDecayMixin, keras.optimizers.Lion):
    """Lion with per-variable learning-rate multipliers."""


_LAYER_DECAY_CLASSES = {keras.optimizers.SGD: LayerDecaySGD,
                        keras.optimizers.AdamW: LayerDecayAdamW,
                        keras.optimizers.RMSprop: LayerDecayRMSprop,
                        keras.optimizers.Lamb: LayerDecayLamb,
                        keras.optimizers.Lion: LayerDecayLion}


def optimizer_class(base: type, config: TrainConfig) -> type:
    """`base`, or its layer-decay variant when --layer_decay is set."""
    if not config.layer_decay:
        return base
    if base not in _LAYER_DECAY_CLASSES:
        raise ValueError(
            f"--layer_decay is implemented for {[c.__name__ for c in _LAYER_DECAY_CLASSES]}, "
            f"not {base.__name__}; drop --layer_decay or change --optimizer.")
    return _LAYER_DECAY_CLASSES[base]


def attach_layer_decay(optimizer: keras.optimizers.Optimizer, model: keras.Model,
                       config: TrainConfig) -> None:
    """Gives a layer-decay `optimizer` (or the one a loss scaler wraps) its multipliers.

    Call before `optimizer.build`; a no-op without --layer_decay.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if isinstance(inner, _LayerDecayMixin):
        inner.lr_multipliers = layer_decay_multipliers(model, config.layer_decay)
