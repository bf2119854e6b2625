"""Flags of `visiontrain-export`, filling an ExportConfig.

Light on purpose (no TensorFlow): the tool parses its flags before importing it, so
a flag error is one line.
"""

from __future__ import annotations

from absl import flags

from visiontrain.config import ExportConfig
from visiontrain.flags.defaults import Definer


def define_export_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Where a run becomes a versioned SavedModel."""
    define = Definer(ExportConfig, fv, __name__)
    define("string", "run_dir", "The training run to export.")
    define("string", "export_dir", "EXPORT/NAME; versions go below it.")
    define("string", "version", "Version number, or 'auto' for the next one.")
    define("integer", "top_k", "k of the top_k outputs.", lower_bound=1)
    define("integer", "max_pixels", "Requests whose image headers declare more pixels are "
           "rejected (INVALID_ARGUMENT) before decoding.", lower_bound=1)
    define("enum", "tflite", "Also write assets.extra/model_<mode>.tflite (uint8 [1,S,S,3] "
           "preprocessed input), verified in LiteRT (pip install 'visiontrain[litert]'); int8 is "
           "calibrated on training images.",
           enum_values=["", "float32", "float16", "int8"])
    define("bool", "onnx", "Also write assets.extra/model.onnx (uint8 [N,S,S,3] preprocessed "
           "input, probabilities out), checked in onnxruntime against the SavedModel; needs "
           "pip install 'visiontrain[onnx]'.")
    define("bool", "calibrate", "Fit one temperature on the validation split (minimum NLL) and "
           "bake it into every signature's probabilities; T and the NLL/Brier/ECE before and "
           "after go to assets.extra/visiontrain.json.")
    define("string", "abstain", "'' (off), 'auto' or a probability P: add the `abstained` "
           "output and the label 'unknown' when the top probability is below the threshold; "
           "auto picks the lowest one reaching --abstain_target on validation.")
    define("float", "abstain_target", "--abstain=auto: accuracy wanted on the accepted "
           "validation images.")
    define("string", "unknown_data_dir", "With --abstain: shards of classes the model never "
           "saw; their validation split's abstain rate is reported beside the known one's.")
    define("enum", "weights", "Which weights to export: the 'newest' checkpoint (its EMA "
           "weights when they evaluated better) or the 'averaged' checkpoints of "
           "--average_checkpoints.", enum_values=["newest", "averaged"])
    define("integer", "eval_image_size", "Serve at this input side instead of the training "
           "--image_size (0: the training size).", lower_bound=0)
    define("float", "eval_crop_fraction", "Centre-crop fraction the signatures bake in "
           "(0: the run's --eval_crop_fraction).", lower_bound=0.0, upper_bound=1.0)
    flags.mark_flags_as_required(["run_dir", "export_dir"], flag_values=fv)
    flags.register_validator(
        "version", lambda v: v == "auto" or (v.isdigit() and int(v) > 0),
        message="--version must be a positive integer or 'auto'.", flag_values=fv)
