"""--sampling=balanced: the classes it delivers, its epoch length, exact resume, determinism."""

from collections import Counter

import numpy as np
import pytest

from tests.helpers.shards import RARE, epoch_keys, imbalanced_digits
from visiontrain.config import DataConfig
from visiontrain.pipelines import balanced, datasets

BATCH = 64


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return imbalanced_digits(str(tmp_path_factory.mktemp("imbalanced")))


def _reader(shards, sampling, seed=0):
    return datasets.make_reader(DataConfig(data_dir=shards, image_size=8, shuffle_buffer=256,
                                           sampling=sampling, seed=seed))


def _labels(reader, epoch):
    steps = reader.steps_per_epoch(BATCH)
    dataset = reader.train_dataset(epoch=epoch, batch_size=BATCH, records_per_epoch=steps * BATCH)
    return np.concatenate([labels.numpy() for _, labels in dataset])


def test_keep_probabilities_equalise_the_expected_class_rates():
    assert balanced.keep_probabilities([100, 10, 0, 50]) == [0.1, 1.0, 0.0, 0.2]
    with pytest.raises(ValueError, match="no records"):
        balanced.keep_probabilities([0, 0])


def test_balanced_sampling_delivers_every_class_equally_often_at_the_same_epoch_length(shards):
    plain, fair = _reader(shards, "none"), _reader(shards, "balanced")
    counts = plain.class_counts("train")
    assert counts["0"] >= 10 * counts["5"]
    drawn = np.concatenate([_labels(fair, 0), _labels(fair, 1)])
    unbalanced = _labels(plain, 0)
    # Same steps per epoch: two epochs of each are 2 x the plain epoch's records.
    assert len(drawn) == 2 * len(unbalanced)
    shares = np.bincount(drawn, minlength=10) / len(drawn)
    plain_shares = np.bincount(unbalanced, minlength=10) / len(unbalanced)
    print(f"balanced shares {shares.round(3).tolist()}; plain {plain_shares.round(3).tolist()}")
    # 1536 draws, p = 0.1: a binomial standard deviation of 0.0077; 0.035 is 4.5 of them.
    np.testing.assert_allclose(shares, 0.1, atol=0.035)
    assert all(plain_shares[d] < 0.03 for d in RARE)


def test_balanced_epochs_are_seeded_and_resume_exactly(shards):
    fair = _reader(shards, "balanced")
    first = epoch_keys(fair, epoch=1, batch=BATCH)
    assert epoch_keys(_reader(shards, "balanced"), epoch=1, batch=BATCH) == first
    assert epoch_keys(fair, epoch=1, batch=BATCH, start_record=3 * BATCH) == first[3 * BATCH:]
    assert epoch_keys(fair, epoch=2, batch=BATCH) != first
    assert epoch_keys(_reader(shards, "balanced", seed=1), epoch=1, batch=BATCH) != first
    # Rare records repeat within an epoch; exactly-once holds for the stream's positions.
    assert max(Counter(first).values()) > 1


def test_balanced_sampling_refuses_what_it_cannot_do(shards, tmp_path):
    with pytest.raises(ValueError, match="in this process only"):
        datasets.make_reader(DataConfig(
            data_dir=shards, image_size=8, sampling="balanced",
            tf_data_service="grpc://localhost:5050")).train_dataset(
            epoch=0, batch_size=BATCH, records_per_epoch=BATCH)
