"""Input pipelines: TFRecord writing and reading, decoding, preprocessing, augmentation."""
