"""A TFDS image-classification dataset as a converter source.

Any prepared TFDS dataset with one Image feature and one ClassLabel feature works.
Images are read still encoded (`SkipDecoding`), so they pass the same gate as
files from a folder. Nothing is downloaded: the dataset must already be prepared
in `data_dir` (`tfds build NAME --data_dir=DIR`).
"""

from __future__ import annotations

import difflib

import tensorflow_datasets as tfds

from visiontrain.pipelines.sources import Source, SourceItem


def feature_keys(builder) -> tuple[str, str]:
    """(image key, label key) of a TFDS builder with one Image and one ClassLabel feature."""
    features = builder.info.features
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    if len(images) != 1 or len(labels) != 1:
        raise ValueError(
            f"TFDS dataset {builder.name} has image features {images} and label features "
            f"{labels}; the converter needs exactly one of each"
        )
    return images[0], labels[0]


def load_tfds(spec: str, data_dir: str | None) -> Source:
    """Reads every example of `spec` ("NAME" or "NAME/CONFIG") from `data_dir`.

    The "train" split becomes train and "validation" (if the dataset has one)
    becomes validation; without one, the converter splits train. "test" is left
    alone so it stays a clean held-out set.

    Raises:
      ValueError: unknown or unprepared dataset, or not image classification.
    """
    try:
        builder = tfds.builder(spec, data_dir=data_dir or None)
    except Exception as err:  # tfds raises several types for a bad name.
        # tfds's own message lists every registered dataset; a few close names help more.
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(spec.split("/")[0], known, n=5)
        raise ValueError(
            f"unknown TFDS dataset {spec!r} (tfds_data_dir={data_dir or 'default'}); "
            f"close registered names: {close or 'none'}; see `tfds.list_builders()`"
        ) from err
    if not builder.is_prepared():
        raise ValueError(
            f"TFDS dataset {spec!r} is not prepared in {builder.data_dir}; run "
            f"`tfds build {spec} --data_dir=...` first (the converter never downloads)"
        )
    image_key, label_key = feature_keys(builder)
    labels = tuple(builder.info.features[label_key].names)
    if "train" not in builder.info.splits:
        raise ValueError(f"TFDS dataset {spec!r} has no train split: {list(builder.info.splits)}")
    presplit = "validation" in builder.info.splits
    items = []
    for tfds_split in ("train", "validation") if presplit else ("train",):
        dataset = builder.as_dataset(
            split=tfds_split, decoders={image_key: tfds.decode.SkipDecoding()}, shuffle_files=False
        )
        for index, example in enumerate(tfds.as_numpy(dataset)):
            items.append(
                SourceItem(
                    f"{tfds_split}/{index:08d}",
                    int(example[label_key]),
                    tfds_split if presplit else None,
                    data=bytes(example[image_key]),
                )
            )
    return Source(labels, tuple(items))
