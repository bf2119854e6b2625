"""visiontrain: production-style image classification training on TensorFlow/Keras."""

__version__ = "0.1.0"
