"""CPU replicas read a plain iterator: the same batches, to the same replicas, as TF's
distributed iterator would give them (one strategy per process: a subprocess)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent("""
    import json
    import sys
    import tensorflow as tf
    from visiontrain.training import replica_input, strategy as strategy_lib

    replicas = int(sys.argv[1])
    devices = strategy_lib.split_cpu(replicas) if replicas > 1 else []
    strategy = (tf.distribute.MirroredStrategy(devices) if devices
                else tf.distribute.get_strategy())

    def dataset_fn(context):
        # Records 0..39 of this pipeline, in per-replica batches of 2.
        records = tf.data.Dataset.range(40).shard(context.num_input_pipelines,
                                                  context.input_pipeline_id)
        return records.batch(context.get_per_replica_batch_size(2 * replicas),
                             drop_remainder=True)

    @tf.function
    def take(iterator):
        return replica_input.next_batch(strategy, iterator)

    def batches(iterator, steps):
        return [[t.numpy().tolist() for t in strategy.experimental_local_results(take(iterator))]
                for _ in range(steps)]

    plain = replica_input.train_iterator(strategy, dataset_fn)
    distributed = iter(strategy.distribute_datasets_from_function(dataset_fn))
    print(json.dumps({
        "plain_is_used": not isinstance(plain, tf.distribute.DistributedIterator),
        "plain": batches(plain, 4),
        "distributed": batches(distributed, 4),
    }))
""")


@pytest.mark.parametrize("replicas", [1, 2])
def test_cpu_replicas_get_the_distributed_iterators_batches(replicas):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, "-c", _SCRIPT, str(replicas)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["plain_is_used"]
    assert report["plain"] == report["distributed"]
    # Consecutive records, batch by batch, replica 0 first: nothing skipped or repeated.
    flat = [record for step in report["plain"] for batch in step for record in batch]
    assert flat == list(range(8 * replicas))
