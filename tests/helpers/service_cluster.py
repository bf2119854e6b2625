"""A tf.data service dispatcher and two workers on 127.0.0.1, hosted by this process.

Run as `python -m tests.helpers.service_cluster`: prints the grpc:// address on one line
and serves until killed. The test fixture hosts the cluster in a child process because
stopping in-process servers waits for every job a consumer left behind: a consumer's
`repeat().take(n)` starts the next iteration of its job and never reads it, and a job whose
client was a finished `visiontrain-train` process is only released when the dispatcher
times that client out (50-140 s of module teardown measured here). Killing the child
costs nothing.
"""

from __future__ import annotations

import signal
import sys

import tensorflow as tf

SERVICE = tf.data.experimental.service


def main() -> None:
    dispatcher = SERVICE.DispatchServer(SERVICE.DispatcherConfig(port=0))
    port = dispatcher.target.rsplit(":", 1)[1]
    workers = [  # noqa: F841 (the servers run while referenced)
        SERVICE.WorkerServer(SERVICE.WorkerConfig(
            dispatcher_address=f"127.0.0.1:{port}", worker_address="127.0.0.1:%port%", port=0))
        for _ in range(2)
    ]
    print(f"grpc://127.0.0.1:{port}", flush=True)
    signal.pause()
    sys.exit(0)


if __name__ == "__main__":
    main()
