"""Early stopping on validation accuracy, decided from the best record and the step alone.

No counter is kept: "epochs since the best evaluation" is derived from the best
checkpoint's record (best.json, which every worker reads) and the current step, so a
resumed run, or a rerun of a run that already stopped, decides exactly as an
uninterrupted one would.
"""

from __future__ import annotations

from typing import Any


def stop_record(best: dict[str, Any], step: int, steps_per_epoch: int,
                patience: int) -> dict[str, Any] | None:
    """The early-stop record when `patience` epochs passed without a better accuracy, else None.

    Args:
      best: the best record (`RunCheckpoints.best_record()`): {"step", "accuracy", ...}, or
        {"accuracy": -1.0} before any evaluation.
      step: the current optimizer step, at the end of an epoch.
      steps_per_epoch: optimizer steps per epoch.
      patience: epochs without improvement that stop the run (0: never stop early).
    """
    if not patience or "step" not in best:
        return None
    epoch, best_epoch = step // steps_per_epoch, best["step"] // steps_per_epoch
    if epoch - best_epoch < patience:
        return None
    return {
        "epoch": epoch, "step": step, "best_epoch": best_epoch,
        "best_accuracy": best["accuracy"], "patience": patience,
        "reason": (f"validation accuracy has not improved for {epoch - best_epoch} epochs "
                   f"(best {best['accuracy']:.4f} at epoch {best_epoch}; "
                   f"--early_stop_patience={patience})"),
    }
