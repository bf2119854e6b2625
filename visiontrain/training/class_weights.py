"""Per-class loss weights for imbalanced data: `--class_weights=balanced|FILE`.

"balanced" is inverse class frequency over the training split, n / (C * n_c)
(scikit-learn's `compute_class_weight("balanced")`), so the weights average 1 over
the training examples and the loss keeps its scale. A FILE is a JSON object naming
every label with a positive weight, used as given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

BALANCED = "balanced"


def balanced_weights(labels: Sequence[str], counts: Mapping[str, int]) -> list[float]:
    """Inverse-frequency weights, n / (C * n_c), one per label in `labels` order.

    Raises:
      ValueError: a label has no training example (its weight would be infinite).
    """
    empty = [label for label in labels if counts.get(label, 0) <= 0]
    if empty:
        raise ValueError(
            f"--class_weights=balanced: labels {empty} have no training example, so their "
            "weight would be infinite; add examples of them or pass a weights FILE."
        )
    total = sum(counts[label] for label in labels)
    return [total / (len(labels) * counts[label]) for label in labels]


def file_weights(path: str, labels: Sequence[str]) -> list[float]:
    """The weights a JSON file gives, one per label in `labels` order.

    Raises:
      ValueError: the file is unreadable, not an object, misses or adds labels, or
        gives a weight that is not a positive finite number.
    """
    how = ('a JSON object giving every label a positive weight, e.g. {"cat": 1.0, '
           '"dog": 4.0}')
    try:
        with open(path, encoding="utf-8") as f:
            given = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"--class_weights={path} is unreadable ({err}); it must be {how}.") \
            from None
    if not isinstance(given, dict):
        raise ValueError(f"--class_weights={path} holds a {type(given).__name__}; it must be "
                         f"{how}.")
    missing, unknown = sorted(set(labels) - set(given)), sorted(set(given) - set(labels))
    if missing or unknown:
        raise ValueError(f"--class_weights={path} must name exactly the dataset's labels: "
                         f"missing {missing}, unknown {unknown}.")
    bad = {label: w for label, w in given.items()
           if isinstance(w, bool) or not isinstance(w, (int, float))
           or not math.isfinite(w) or w <= 0}
    if bad:
        raise ValueError(f"--class_weights={path}: weights {bad} are not positive numbers.")
    return [float(given[label]) for label in labels]


def resolve(spec: str, labels: Sequence[str], counts: Mapping[str, int] | None) -> (
        list[float] | None):
    """The per-class weights of `--class_weights=spec` ('' : None, no weighting).

    Args:
      spec: '', 'balanced', or a JSON file's path.
      labels: the label map.
      counts: training examples per label (an example counts once for each of its
        labels), or None when the data does not record them.

    Raises:
      ValueError: see `balanced_weights` and `file_weights`; 'balanced' without counts.
    """
    if not spec:
        return None
    if spec == BALANCED:
        if counts is None:
            raise ValueError("--class_weights=balanced needs the training split's class "
                             "counts, which only visiontrain-data shards record; convert the "
                             "data with visiontrain-data build or pass a weights FILE.")
        return balanced_weights(labels, counts)
    return file_weights(spec, labels)
