"""Training epochs preprocessed on a tf.data service cluster hosted by the test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import shards
from tests.helpers.runs import env, run_train
from visiontrain.config import DataConfig
from visiontrain.pipelines import data_service, datasets, epoch_order, record_sources

NAMES = ("a", "b", "c")
NUM_TRAIN = 23
BATCH = 4


@pytest.fixture(scope="module")
def cluster():
    """A dispatcher and two workers on this host, in a child process (see
    tests/helpers/service_cluster.py); yields the grpc:// address."""
    server = subprocess.Popen([sys.executable, "-m", "tests.helpers.service_cluster"],
                              env=env(), stdout=subprocess.PIPE, text=True)
    address = server.stdout.readline().strip()
    assert address.startswith("grpc://127.0.0.1:"), f"no cluster address: {address!r}"
    yield address
    server.kill()
    server.wait()


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    return shards.write_shard_dirs(tmp_path_factory, NAMES, NUM_TRAIN, 5)


def _all_keys():
    return {k.encode() for k in shards.split_keys("train", NUM_TRAIN)}


def _epoch(data_dir, address, *, epoch=0, start_record=0, num_pipelines=1, pipeline_id=0):
    source = datasets.make_reader(
        DataConfig(data_dir=data_dir, image_size=8, shuffle_buffer=4, tf_data_service=address)
    )
    steps = source.steps_per_epoch(BATCH * num_pipelines, num_pipelines)
    dataset = source.train_dataset(
        epoch=epoch, batch_size=BATCH, records_per_epoch=steps * BATCH,
        start_record=start_record, num_pipelines=num_pipelines, pipeline_id=pipeline_id,
        with_keys=True,
    )
    return steps, list(dataset.as_numpy_iterator())


@pytest.mark.parametrize("num_shards", [1, 3])
def test_epoch_on_service_is_exactly_once_with_full_batches(data_dirs, cluster, num_shards):
    steps, batches = _epoch(data_dirs[num_shards], cluster)
    assert steps == NUM_TRAIN // BATCH
    assert len(batches) == steps
    for images, labels, _ in batches:
        assert images.shape == (BATCH, 8, 8, 3) and images.dtype == np.uint8
        assert labels.shape == (BATCH,) and labels.dtype == np.int32
    keys = [k for _, _, batch_keys in batches for k in batch_keys]
    assert len(keys) == len(set(keys)) == steps * BATCH
    assert set(keys) <= _all_keys()


def test_element_spec_has_a_static_batch(data_dirs, cluster):
    config = DataConfig(data_dir=data_dirs[3], image_size=8, tf_data_service=cluster)
    dataset = datasets.make_reader(config).train_dataset(
        epoch=0, batch_size=BATCH, records_per_epoch=20)
    assert dataset.element_spec[0].shape.as_list() == [BATCH, 8, 8, 3]
    assert dataset.element_spec[1].shape.as_list() == [BATCH]


def test_pipelines_on_service_share_nothing_by_record(data_dirs, cluster):
    # One file for two input pipelines: the record stride is applied per record index.
    shares = [set(), set()]
    for pipeline_id in (0, 1):
        steps, batches = _epoch(data_dirs[1], cluster, num_pipelines=2, pipeline_id=pipeline_id)
        assert len(batches) == steps
        keys = [k for _, _, batch_keys in batches for k in batch_keys]
        assert len(keys) == len(set(keys)) == steps * BATCH
        shares[pipeline_id] = set(keys)
    assert not shares[0] & shares[1]


def test_the_dropped_remainder_changes_with_the_epoch(data_dirs, cluster):
    kept = [
        {k for _, _, batch_keys in _epoch(data_dirs[3], cluster, epoch=epoch)[1]
         for k in batch_keys}
        for epoch in range(4)
    ]
    assert len({frozenset(k) for k in kept}) > 1


def test_epochs_on_service_follow_one_another_exactly_once(data_dirs, cluster):
    source = datasets.make_reader(
        DataConfig(data_dir=data_dirs[3], image_size=8, shuffle_buffer=4, tf_data_service=cluster)
    )
    steps = source.steps_per_epoch(BATCH)
    batches = list(source.train_dataset(epoch=0, epochs=2, batch_size=BATCH,
                                        records_per_epoch=steps * BATCH,
                                        with_keys=True).as_numpy_iterator())
    assert len(batches) == 2 * steps
    for epoch_batches in (batches[:steps], batches[steps:]):
        keys = [k for _, _, batch_keys in epoch_batches for k in batch_keys]
        assert len(keys) == len(set(keys)) == steps * BATCH


def test_a_rebuilt_epoch_gets_a_fresh_job(data_dirs, cluster):
    # A restarted run rebuilds the same epoch; a shared job name would hand it the
    # finished job of the first build, i.e. no data.
    first = _epoch(data_dirs[3], cluster)[1]
    second = _epoch(data_dirs[3], cluster)[1]
    assert len(first) == len(second) == NUM_TRAIN // BATCH


def test_mid_epoch_resume_on_service_is_exact_in_steps(data_dirs, cluster, caplog):
    data_service.warn_inexact_resume.cache_clear()
    with caplog.at_level("WARNING"):
        steps, batches = _epoch(data_dirs[3], cluster, start_record=2 * BATCH)
        _epoch(data_dirs[3], cluster, start_record=BATCH)
    assert len(batches) == steps - 2
    keys = [k for _, _, batch_keys in batches for k in batch_keys]
    assert len(keys) == len(set(keys))
    assert sum("Resuming mid-epoch on the tf.data service" in r.message
               for r in caplog.records) == 1


@pytest.mark.parametrize("stride, phase", [(1, 0), (2, 0), (2, 1), (3, 2)])
def test_indexed_records_keep_exactly_the_masked_share(data_dirs, stride, phase):
    source = record_sources.ShardSource(data_dirs[3])
    files = source.files("train")
    share_size = len(range(phase, NUM_TRAIN, stride))
    keep = epoch_order.remainder_mask(share_size, share_size - 2, seed=5).numpy()
    records = data_service.indexed_records(files, source.read, np.array([2, 0, 1]), keep,
                                           stride, phase)
    indices = [int(i) for i, _ in records.as_numpy_iterator()]
    assert sorted(indices) == np.flatnonzero(keep).tolist()
    offsets, counts = data_service.share_offsets(files)
    assert counts.sum() == NUM_TRAIN and offsets.tolist() == [0, 8, 16]


@pytest.mark.parametrize("address, message", [
    ("localhost:5050", "use grpc://HOST:PORT"),
    ("grpc://localhost", "use grpc://HOST:PORT"),
    ("grpc://localhost:99999", "port in [1, 65535]"),
    ("http://localhost:5050", "use grpc://HOST:PORT"),
    ("grpc://:5050", "use grpc://HOST:PORT"),
])
def test_bad_addresses_are_refused_with_the_form(address, message):
    with pytest.raises(ValueError, match=r"--tf_data_service=.*" + message.replace("[", r"\[")
                       .replace("]", r"\]")):
        data_service.parse_address(address)


def test_parse_address_reads_host_and_port():
    assert data_service.parse_address("grpc://10.0.0.7:5050") == ("10.0.0.7", 5050)
    assert data_service.parse_address("grpc://[::1]:5050") == ("::1", 5050)


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_dispatcher_fails_the_preflight(data_dirs):
    address = f"grpc://127.0.0.1:{_closed_port()}"
    source = datasets.make_reader(DataConfig(data_dir=data_dirs[3], tf_data_service=address))
    with pytest.raises(ValueError, match=f"No tf.data service dispatcher answers at "
                                         f"--tf_data_service={address}"):
        source.preflight()


def test_a_running_dispatcher_passes_the_preflight(data_dirs, cluster):
    datasets.make_reader(DataConfig(data_dir=data_dirs[3], tf_data_service=cluster)).preflight()


@pytest.mark.slow
def test_train_tool_on_the_service(tmp_path, cluster, digits):
    run_dir = str(tmp_path / "run")
    result = run_train(digits, run_dir, "--epochs=1", f"--tf_data_service={cluster}",
                       timeout=180)
    assert result.returncode == 0, result.stdout[-3000:]
    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert results["step"] == 1500 // 64
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["data"]["tf_data_service"] == cluster
    assert results["validation"]["accuracy"] > 0.3


@pytest.mark.slow
@pytest.mark.parametrize("address, message", [
    ("dispatcher:5050", "use grpc://HOST:PORT"),
    ("unreachable", "No tf.data service dispatcher answers at --tf_data_service=grpc://127.0.0.1:"),
])
def test_train_tool_refuses_a_bad_service(tmp_path, address, message, digits):
    if address == "unreachable":
        address = f"grpc://127.0.0.1:{_closed_port()}"
    result = run_train(digits, str(tmp_path / "run"), "--epochs=1",
                       f"--tf_data_service={address}", timeout=120)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-2000:]
    assert "Traceback" not in result.stdout
    assert "per epoch, global batch" not in result.stdout
