"""Test helper: a tiny TFDS builder over generated images (nothing is downloaded)."""

import numpy as np
import tensorflow_datasets as tfds

NUM_TRAIN, NUM_VAL = 21, 5


class TinyShapes(tfds.core.GeneratorBasedBuilder):
    """Random images of varying size, three classes."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "label": tfds.features.ClassLabel(names=["x", "y", "z"]),
            }),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(NUM_TRAIN, 0),
                "validation": self._generate_examples(NUM_VAL, 1)}

    def _generate_examples(self, n, seed):
        rng = np.random.default_rng(seed)
        for i in range(n):
            shape = (int(rng.integers(9, 20)), int(rng.integers(9, 20)), 3)
            yield i, {"image": rng.integers(0, 256, shape, np.uint8), "label": i % 3}
