"""DistributionConfig: how replicas and workers are laid out."""

from __future__ import annotations

import dataclasses

from visiontrain.config.schema import EXECUTION, Section

DISTRIBUTION = Section("distribution", "How replicas and workers are laid out")

STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device", "tpu")


@dataclasses.dataclass(frozen=True)
class DistributionConfig:
    """How replicas and workers are laid out: where the steps run, never what they train."""

    strategy: str = DISTRIBUTION("auto", help="tf.distribute strategy.", resume=EXECUTION,
                                 choices=STRATEGIES)
    cpu_replicas: int = DISTRIBUTION(1, help="Split the CPU into N logical devices (N "
                                     "replicas).", resume=EXECUTION, min=1)
    worker_hosts: tuple[str, ...] = DISTRIBUTION((), help="host:port of every worker "
                                                 "(multi_worker).", resume=EXECUTION)
    task_index: int = DISTRIBUTION(0, help="This worker's index in --worker_hosts.",
                                   resume=EXECUTION, min=0)
    tpu: str = DISTRIBUTION("", help="TPU name or grpc:// address (strategy=tpu).",
                            resume=EXECUTION)
    collective_timeout_s: int = DISTRIBUTION(60, help="Fail a collective after this long.",
                                             resume=EXECUTION, min=1)
