"""ExportConfig: where and how a trained run becomes a versioned SavedModel."""

from __future__ import annotations

import dataclasses

from visiontrain.config.paths import absolute_paths
from visiontrain.config.schema import Section

EXPORT = Section("export", "Which run, which weights, and where the SavedModel goes")
SIGNATURES = Section("signatures", "What the serving signatures take and answer")
RUNTIMES = Section("runtimes", "Other runtimes written beside the SavedModel")

TFLITE_MODES = ("", "float32", "float16", "int8")
# "newest": the newest checkpoint (EMA weights when they evaluated better);
# "averaged": the checkpoint mean of --average_checkpoints.
EXPORT_WEIGHTS = ("newest", "averaged")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Where and how a trained run becomes a versioned SavedModel."""

    run_dir: str = EXPORT(help="The training run to export.", path=True)
    export_dir: str = EXPORT(help="EXPORT/NAME; versions go below it.", path=True)
    version: str = EXPORT("auto", help="Version number, or 'auto' for the next one.")
    top_k: int = SIGNATURES(5, help="k of the top_k outputs.", min=1)
    max_pixels: int = SIGNATURES(50_000_000, help="Requests whose image headers declare more "
                                 "pixels are rejected (INVALID_ARGUMENT) before decoding.",
                                 min=1)
    tflite: str = RUNTIMES("", help="Also write assets.extra/model_<mode>.tflite (uint8 "
                           "[1,S,S,3] preprocessed input), verified in LiteRT (pip install "
                           "'visiontrain[litert]'); int8 is calibrated on training images.",
                           choices=TFLITE_MODES)
    onnx: bool = RUNTIMES(False, help="Also write assets.extra/model.onnx (uint8 [N,S,S,3] "
                          "preprocessed input, probabilities out), checked in onnxruntime "
                          "against the SavedModel; needs pip install 'visiontrain[onnx]'.")
    calibrate: bool = SIGNATURES(False, help="Fit one temperature on the validation split "
                                 "(minimum NLL) and bake it into every signature's "
                                 "probabilities; T and the NLL/Brier/ECE before and after go "
                                 "to assets.extra/visiontrain.json.")
    abstain: str = SIGNATURES("", help="'' (off), 'auto' or a probability P: add the "
                              "`abstained` output and the label 'unknown' when the top "
                              "probability is below the threshold; auto picks the lowest one "
                              "reaching --abstain_target on validation.")
    abstain_target: float = SIGNATURES(0.99, help="--abstain=auto: accuracy wanted on the "
                                       "accepted validation images.", above=0.0, max=1.0)
    unknown_data_dir: str = SIGNATURES("", help="With --abstain: shards of classes the model "
                                       "never saw; their validation split's abstain rate is "
                                       "reported beside the known one's.", path=True)
    weights: str = EXPORT("newest", help="Which weights to export: the 'newest' checkpoint "
                          "(its EMA weights when they evaluated better) or the 'averaged' "
                          "checkpoints of --average_checkpoints.", choices=EXPORT_WEIGHTS)
    # The preprocessing baked into the signatures; 0 takes the run's image_size and
    # eval_crop_fraction.
    eval_image_size: int = SIGNATURES(0, help="Serve at this input side instead of the "
                                      "training --image_size (0: the training size).", min=0)
    eval_crop_fraction: float = SIGNATURES(0.0, help="Centre-crop fraction the signatures bake "
                                           "in (0: the run's --eval_crop_fraction).",
                                           min=0.0, max=1.0)

    def __post_init__(self):
        absolute_paths(self)
        if self.version != "auto" and not (self.version.isdigit() and int(self.version) > 0):
            raise ValueError(f"--version={self.version!r}: pass a positive integer or 'auto'.")
        if self.abstain not in ("", "auto"):
            try:
                threshold = float(self.abstain)
            except ValueError:
                threshold = -1.0
            if not 0.0 < threshold < 1.0:
                raise ValueError(f"--abstain={self.abstain!r}: pass 'auto' or a probability "
                                 "strictly between 0 and 1, e.g. --abstain=0.6.")
        if not 0.0 < self.abstain_target <= 1.0:
            raise ValueError(f"--abstain_target={self.abstain_target}: pass an accuracy in "
                             "(0, 1], e.g. 0.99.")
        if self.unknown_data_dir and not self.abstain:
            raise ValueError("--unknown_data_dir measures abstention; pass --abstain too.")
