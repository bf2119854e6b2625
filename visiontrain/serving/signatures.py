"""The serving signatures of an exported model.

    serving_default:    image_bytes string [None] (JPEG, PNG, GIF, BMP)
    predict_images:     images uint8 [None, H, W, 3], any H and W
    predict_tf_example: examples string [None], serialized tf.Example (shard schema)

Each returns probabilities float32 [None, C], top_k_indices int32 [None, k],
top_k_scores float32 [None, k] and top_k_labels string [None, k]. An export with
--abstain also returns abstained bool [None] (top probability below its threshold),
and such rows name their first top_k_labels entry UNKNOWN (indices and scores keep the
best guess). Every signature
runs the shared evaluation preprocessing (`pipelines.preprocess`), after the
in-graph request checks of `serving.request_checks`.

A multi-label model (exported with per-label thresholds) returns per-label sigmoid
probabilities instead of a softmax, and one more output, labels string [None, C]: the
names of the labels whose probability reaches their threshold, most probable first,
padded with "" to C. A dense string tensor, so TF Serving's REST API returns it as
one JSON list per image, e.g. "labels": ["3", "7", "", "", ""].
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from visiontrain.pipelines import preprocess, schema
from visiontrain.serving import request_checks

SIGNATURES = ("serving_default", "predict_images", "predict_tf_example")
INPUTS = {
    "serving_default": "image_bytes",
    "predict_images": "images",
    "predict_tf_example": "examples",
}
OUTPUTS = ("probabilities", "top_k_indices", "top_k_scores", "top_k_labels")
MULTI_LABEL_OUTPUTS = (*OUTPUTS, "labels")


def labels_above(probabilities: tf.Tensor, thresholds: tf.Tensor,
                 class_names: tf.Tensor) -> tf.Tensor:
    """string [B, C]: the labels reaching their threshold, most probable first, then ""."""
    above = probabilities >= thresholds
    # Labels above threshold sort before all others (probabilities are in [0, 1]).
    order = tf.argsort(tf.cast(above, tf.float32) * 2.0 + probabilities, direction="DESCENDING",
                       stable=True)
    names = tf.gather(class_names, order)
    return tf.where(tf.gather(above, order, batch_dims=1), names, "")
ABSTAINED = "abstained"
UNKNOWN = "unknown"


def build_archive(
    model: keras.Model,
    labels: list[str],
    image_size: int,
    crop_fraction: float,
    top_k: int,
    max_pixels: int,
    thresholds: Sequence[float] | None = None,
    temperature: float = 1.0,
    abstain_threshold: float | None = None,
) -> tuple[keras.export.ExportArchive, dict[str, tf.types.experimental.GenericFunction]]:
    """The three serving signatures around `model`, with the class names embedded.

    With `thresholds` (one per label) the model is multi-label: sigmoid probabilities and
    the `labels` output, with the thresholds baked into the graph as constants. Otherwise
    `probabilities` is softmax(logits / temperature): --calibrate's T, 1 otherwise, and
    with `abstain_threshold` the ABSTAINED output and UNKNOWN label are added.

    Returns:
      The archive to write, and its endpoints by name, callable in process.
    """
    class_names = tf.constant(labels)
    k = min(top_k, len(labels))
    image_spec = tf.TensorSpec([image_size, image_size, 3], tf.uint8)

    def outputs(images):
        logits = tf.cast(model(tf.cast(images, tf.float32), training=False), tf.float32)
        if thresholds is None:
            probabilities = tf.nn.softmax(logits / temperature)
        else:
            probabilities = tf.nn.sigmoid(logits)
        scores, indices = tf.math.top_k(probabilities, k)
        result = {
            "probabilities": probabilities,
            "top_k_indices": indices,
            "top_k_scores": scores,
            "top_k_labels": tf.gather(class_names, indices),
        }
        if thresholds is not None:
            result["labels"] = labels_above(probabilities, tf.constant(thresholds, tf.float32),
                                            class_names)
        if abstain_threshold is not None:
            abstained = scores[:, 0] < abstain_threshold
            first = tf.where(abstained, UNKNOWN, result["top_k_labels"][:, 0])
            result["top_k_labels"] = tf.concat(
                [first[:, None], result["top_k_labels"][:, 1:]], axis=1)
            result[ABSTAINED] = abstained
        return result

    def decode_all(encoded, input_name):
        encoded = request_checks.check_encoded(encoded, max_pixels, input_name)
        return tf.map_fn(
            lambda e: preprocess.preprocess_for_eval(e, image_size, crop_fraction),
            encoded,
            fn_output_signature=image_spec,
        )

    def serve_bytes(image_bytes):
        return outputs(decode_all(image_bytes, "image_bytes"))

    def serve_images(images):
        images = request_checks.check_decoded(images, max_pixels)
        return outputs(preprocess.preprocess_decoded_for_eval(images, image_size, crop_fraction))

    def serve_examples(examples):
        features = tf.io.parse_example(examples, {schema.ENCODED: schema.FEATURES[schema.ENCODED]})
        return outputs(decode_all(features[schema.ENCODED], f"examples[{schema.ENCODED}]"))

    specs = {
        "serving_default": (serve_bytes, tf.TensorSpec([None], tf.string, "image_bytes")),
        "predict_images": (serve_images, tf.TensorSpec([None, None, None, 3], tf.uint8, "images")),
        "predict_tf_example": (serve_examples, tf.TensorSpec([None], tf.string, "examples")),
    }
    endpoints = {
        name: tf.function(fn, input_signature=[spec]) for name, (fn, spec) in specs.items()
    }
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, endpoint in endpoints.items():
        archive.add_endpoint(name, endpoint)
    return archive, endpoints


def sample_requests(encoded: list[bytes], image_size: int) -> dict[str, dict[str, tf.Tensor]]:
    """One request per signature built from the same encoded images.

    `predict_images` gets the decoded images at image_size (they must share one
    shape to form a batch), `predict_tf_example` minimal Examples holding the bytes.
    """
    decoded = [
        preprocess.resize_uint8(preprocess.decode_rgb(e), image_size)
        for e in encoded
    ]
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={schema.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[e]))}
            )
        ).SerializeToString()
        for e in encoded
    ]
    return {
        "serving_default": {"image_bytes": tf.constant(encoded)},
        "predict_images": {"images": tf.stack(decoded)},
        "predict_tf_example": {"examples": tf.constant(examples)},
    }
