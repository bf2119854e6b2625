"""A record's pixels for training and evaluation, fitted to what its source records.

Where a source records each image's EXIF orientation (our shards) the reader passes
it on instead of parsing bytes, and where a source holds only JPEG and PNG the
decoder drops the other formats' handling (GIF transparency, WebP alpha): each op
of a `Dataset.map` function costs time per image, dead branches included (~0.4 ms
and ~0.25 ms of CPU per 224-pixel crop; measured on TF 2.21, docs/benchmarks.md).
The pixels are the same either way.
"""

from __future__ import annotations

import functools
from typing import Any

import tensorflow as tf

from visiontrain.config import DataConfig
from visiontrain.pipelines import preprocess
from visiontrain.pipelines.record_sources import IMAGE, ORIENTATION


@functools.lru_cache(maxsize=None)
def _traced_train_crop(
    image_size: int, area_range: tuple[float, float], aspect_ratio_range: tuple[float, float],
    recorded_turn: bool, jpeg_png_only: bool,
) -> Any:
    # Traced once per setting: `Dataset.map` retraces (with autograph) for every new
    # dataset, 0.06 s of the ~0.2 s set-up of a dataset (measured, TF 2.21).
    def crop(encoded, seed, turn=None):
        return preprocess.preprocess_for_train(
            encoded, seed, image_size, area_range, aspect_ratio_range, turn, jpeg_png_only)

    specs = [tf.TensorSpec([], tf.string), tf.TensorSpec([2], tf.int64)]
    specs += [tf.TensorSpec([], tf.int32)] if recorded_turn else []
    return tf.function(crop, autograph=False).get_concrete_function(*specs)


def train_crop(config: DataConfig, jpeg_png_only: bool):
    """(record, seed [2]) -> the training crop, uint8 [S, S, 3]."""
    crops = {recorded: _traced_train_crop(
        config.image_size,
        (config.crop_area_min, config.crop_area_max),
        (config.aspect_ratio_min, config.aspect_ratio_max),
        recorded,
        jpeg_png_only,
    ) for recorded in (False, True)}

    def crop(record: dict[str, tf.Tensor], seed: tf.Tensor) -> tf.Tensor:
        # The record's structure is static, so this picks one traced crop per dataset.
        if ORIENTATION in record:
            return crops[True](record[IMAGE], seed, record[ORIENTATION])
        return crops[False](record[IMAGE], seed)

    return crop


def eval_view(record: dict[str, tf.Tensor], config: DataConfig, jpeg_png_only: bool
              ) -> tf.Tensor:
    """The evaluation preprocessing of a record, uint8 [S, S, 3], as served."""
    return preprocess.preprocess_for_eval(record[IMAGE], config.image_size,
                                          config.eval_crop_fraction, record.get(ORIENTATION),
                                          jpeg_png_only)
