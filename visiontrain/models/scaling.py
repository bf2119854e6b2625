"""Input scaling: the first layers of every model, from [0, 255] RGB to the net's own scale.

Every model takes raw [0, 255] float32 RGB so that the data pipeline and the serving
signature never need to know which backbone they feed; each backbone's convention lives
here, next to the weights that expect it. Only stock Keras layers and ops are used, so a
saved model reloads without custom objects.
"""

from __future__ import annotations

import keras

# ImageNet channel statistics in [0, 1] RGB (torchvision / Model Garden convention).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The "caffe" convention of keras.applications ResNet v1: BGR, mean subtracted, no scaling.
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)

SCALINGS = {
    "imagenet_mean_std": "(x / 255 - ImageNet mean) / ImageNet std, per RGB channel",
    "minus_one_one": "x / 127.5 - 1, i.e. [-1, 1]",
    # timm's MobileNetV5 (Gemma 3n's vision encoder) has mean 0 and std 1.
    "zero_one": "x / 255, i.e. [0, 1]",
    "caffe_bgr": "RGB -> BGR, then subtract the ImageNet mean in [0, 255] (no std scaling)",
    "builtin": "none here: the backbone rescales [0, 255] itself (include_preprocessing=True)",
}


def apply_input_scaling(x: keras.KerasTensor, scaling: str) -> keras.KerasTensor:
    """Maps [0, 255] RGB images to the scale a backbone was trained with.

    Args:
      x: Symbolic images, shape [batch, height, width, 3], values in [0, 255].
      scaling: One of `SCALINGS`.

    Returns:
      The scaled images, same shape.
    """
    if scaling == "imagenet_mean_std":
        return keras.layers.Normalization(
            mean=[255.0 * m for m in IMAGENET_MEAN],
            variance=[(255.0 * s) ** 2 for s in IMAGENET_STD],
            name="input_scaling",
        )(x)
    if scaling == "minus_one_one":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="input_scaling")(x)
    if scaling == "zero_one":
        return keras.layers.Rescaling(1.0 / 255.0, name="input_scaling")(x)
    if scaling == "caffe_bgr":
        x = keras.layers.Normalization(
            mean=list(CAFFE_MEAN_RGB), variance=[1.0, 1.0, 1.0], name="input_scaling"
        )(x)
        # A Keras op node (not a Lambda): serialised by Keras itself, weight-free, so it
        # can never be unfrozen or weight-decayed by the trainer.
        return keras.ops.flip(x, axis=-1)
    if scaling == "builtin":
        return x
    raise ValueError(f"Unknown input scaling {scaling!r}; known: {sorted(SCALINGS)}")
