"""Builds the tf.distribute strategy a run asks for.

One strategy per process: a second MirroredStrategy over the same logical CPUs
breaks collectives (measured on TF 2.21), so tools build exactly one, here.
"""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from visiontrain.config import STRATEGIES, DistributionConfig


def split_cpu(num_replicas: int) -> list[str]:
    """Splits the host CPU into `num_replicas` logical devices; returns their names.

    Must run before TensorFlow initialises its devices (before any op runs). The
    logical devices share one intra-op thread pool and run their replicas' ops side by
    side, so each op gets the cores' share of one replica (unless the pool was sized
    already). Measured on 2 shared cores, ResNet-20 at 16 px, batch 64: with a pool as
    wide as the machine 2 replicas ran at 0.68-0.74x the img/s of 1 (see the README's
    speed figures for R_replicas now).
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        if not tf.config.threading.get_intra_op_parallelism_threads():
            cores = len(os.sched_getaffinity(0))
            tf.config.threading.set_intra_op_parallelism_threads(max(1, cores // num_replicas))
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_replicas
        )
    except RuntimeError as err:
        existing = tf.config.list_logical_devices("CPU")
        if len(existing) != num_replicas:
            raise RuntimeError(
                f"Cannot split the CPU into {num_replicas} devices: TensorFlow already "
                f"initialised {len(existing)}. Split before running any TF op."
            ) from err
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def tf_config_from_hosts(worker_hosts: tuple[str, ...], task_index: int) -> str:
    """The TF_CONFIG JSON for a worker cluster given as host:port strings."""
    if not 0 <= task_index < len(worker_hosts):
        raise ValueError(
            f"--task_index={task_index} is outside the {len(worker_hosts)} --worker_hosts."
        )
    return json.dumps(
        {"cluster": {"worker": list(worker_hosts)}, "task": {"type": "worker", "index": task_index}}
    )


def make_strategy(config: DistributionConfig) -> tf.distribute.Strategy:
    """Creates the strategy named by `config.strategy`.

    auto: MirroredStrategy over the visible GPUs; else over `cpu_replicas` logical
    CPUs when that is 2 or more; else TF's default strategy on the one CPU device.
    """
    if config.strategy not in STRATEGIES:
        raise ValueError(f"Unknown --strategy={config.strategy!r}; use one of {STRATEGIES}.")
    if config.strategy == "multi_worker":
        return _multi_worker(config)
    if config.strategy == "tpu":
        return _tpu(config.tpu)
    gpus = tf.config.list_physical_devices("GPU")
    cpu_devices = split_cpu(config.cpu_replicas) if config.cpu_replicas >= 2 else []
    if config.strategy == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if gpus:
        return tf.distribute.MirroredStrategy()
    if cpu_devices:
        return tf.distribute.MirroredStrategy(cpu_devices)
    if config.strategy == "mirrored":
        return tf.distribute.MirroredStrategy(["/cpu:0"])
    # One CPU device has nothing to distribute: TF's default strategy. (The same step
    # under a one-device MirroredStrategy runs as fast, 1,073 against 1,046 img/s, once
    # it reads a plain iterator: see replica_input.py.)
    return tf.distribute.get_strategy()


def _multi_worker(config: DistributionConfig) -> tf.distribute.Strategy:
    if config.worker_hosts:
        os.environ["TF_CONFIG"] = tf_config_from_hosts(config.worker_hosts, config.task_index)
    if "TF_CONFIG" not in os.environ:
        raise ValueError(
            "--strategy=multi_worker needs a cluster: set TF_CONFIG, or pass --worker_hosts "
            "and --task_index."
        )
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=config.collective_timeout_s
    )
    logging.info("MultiWorkerMirroredStrategy from TF_CONFIG=%s", os.environ["TF_CONFIG"])
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _tpu(address: str) -> tf.distribute.Strategy:
    # Untestable here: the standard TPU bring-up, kept minimal on purpose.
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes checkpoints, summaries and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0)
