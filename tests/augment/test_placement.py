"""Augmentation runs per replica, on that replica's device, inside the train step."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent("""
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from visiontrain.augment.policy import make_augmenter

    AUG_OPS = {"ImageProjectiveTransformV3", "DenseBincount", "DepthwiseConv2dNative"}
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    augmenter = make_augmenter("flip,rotate:10,randaugment:2:9,mixup:0.2", 4, seed=0)
    image = tf.cast(tf.random.uniform([1, 16, 16, 3], 0, 256, seed=1), tf.uint8)
    dataset = tf.data.Dataset.from_tensors(
        (tf.tile(image, [4, 1, 1, 1]), tf.constant([0, 1, 2, 3]))).repeat(2)

    @tf.function
    def step(batch):
        def replica_fn(images, labels):
            out, _ = augmenter(tf.cast(images, tf.float32), tf.one_hot(labels, 4),
                               training=True, step=tf.constant(3))
            return out
        return strategy.run(replica_fn, args=batch)

    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    outputs = strategy.experimental_local_results(step(batch))
    graph = step.get_concrete_function(batch).graph
    placed = sorted({(op.name.split("/")[0], op.device) for op in graph.get_operations()
                     if op.type in AUG_OPS})
    input_ops = {node.op for node in tf.compat.v1.GraphDef.FromString(
        dataset._as_serialized_graph().numpy()).node}
    print(json.dumps({
        "placed": placed,
        "input_has_aug_ops": bool(input_ops & AUG_OPS),
        "replicas_differ": bool(tf.reduce_any(outputs[0] != outputs[1])),
    }))
""")


@pytest.mark.slow
def test_augmentation_is_placed_on_each_replica_device():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    by_scope = {}
    for scope, device in report["placed"]:
        by_scope.setdefault("replica_1" if scope == "replica_1" else "replica_0", set()).add(device)
    assert by_scope["replica_0"] and all(d.endswith("CPU:0") for d in by_scope["replica_0"])
    assert by_scope["replica_1"] and all(d.endswith("CPU:1") for d in by_scope["replica_1"])
    assert not report["input_has_aug_ops"]
    assert report["replicas_differ"]
