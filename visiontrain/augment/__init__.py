"""On-device augmentation: runs inside the replicated train step, never in tf.data."""
