"""The one magic-byte table: the gate, the TF sniffer and the request check agree on it."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from visiontrain.pipelines import formats, image_gate, preprocess
from visiontrain.serving import request_checks


def encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((6, 5, 3), 90, np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("name", formats.NAMES)
def test_every_format_is_known_to_gate_tf_sniffer_and_request_check(name):
    data = encoded(name.upper())
    assert formats.sniff(data) == name
    assert image_gate.inspect_bytes(data).format == name
    assert bool(preprocess.has_magic(tf.constant(data), name))
    known, pixels = request_checks.header_pixels(tf.constant([data]))
    assert bool(known[0]) and int(pixels[0]) == 30


@pytest.mark.parametrize("data", [b"RIFF\0\0\0\0WAVEfmt ", b"II*\0\0\0\0\0", b"RIF"])
def test_unknown_bytes_are_unknown_everywhere(data):
    # A RIFF file is a WebP only with the WEBP form type (WAV and AVI are RIFF too).
    assert formats.sniff(data) is None
    assert not any(bool(preprocess.has_magic(tf.constant(data), n)) for n in formats.NAMES)
    assert not bool(request_checks.header_pixels(tf.constant([data]))[0][0])
