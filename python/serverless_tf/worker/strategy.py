"""The distribution strategy of a job and the TF_CONFIG it needs.

Three modes, by the cluster's shape:

- one worker, no parameter servers: the default strategy;
- several workers, no parameter servers: ``MultiWorkerMirroredStrategy``, every worker running
  the user's entry in lockstep;
- parameter servers: ``ParameterServerStrategy``. The chief runs the user's entry as the
  ClusterCoordinator; workers and parameter servers run a ``tf.distribute.Server`` and no user
  code (python/serverless_tf/worker/entry.py).

Both multi-member modes run through tf_keras (``TF_USE_LEGACY_KERAS=1``, set by
``serverless_tf/__init__.py`` before TensorFlow is imported): Keras 3 fails under
MultiWorkerMirroredStrategy with "PerReplica unsupported type" (measured here) and has no
ParameterServerStrategy support in ``fit`` (keras#18624); tf_keras keeps both.
"""
from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, Mapping, Sequence


class StrategyError(RuntimeError):
    """The cluster cannot be brought up: a member's server never became reachable."""


def tf_config(cluster_spec: Mapping[str, Sequence[str]], role: str, index: int) -> dict[str, Any]:
    """The TF_CONFIG of one member: the cluster (non-empty roles only) and its own task.

    Example:
        >>> tf_config({"worker": ["h:1", "h:2"], "ps": []}, "worker", 1)
        {'cluster': {'worker': ['h:1', 'h:2']}, 'task': {'type': 'worker', 'index': 1}}
    """
    cluster = {r: list(addresses) for r, addresses in cluster_spec.items() if addresses}
    return {"cluster": cluster, "task": {"type": role, "index": index}}


def wait_for_servers(addresses: Sequence[str], timeout_s: float, poll_s: float = 0.2) -> None:
    """Returns once every ``host:port`` accepts a TCP connection.

    The chief builds ParameterServerStrategy right after the start barrier, while the other members
    may still be importing TensorFlow; connecting before their servers listen fails the strategy.

    Raises:
        StrategyError: naming the addresses still closed at the deadline.
    """
    deadline = time.monotonic() + timeout_s
    waiting = list(addresses)
    while waiting:
        still = []
        for address in waiting:
            host, port = address.rsplit(":", 1)
            try:
                with socket.create_connection((host, int(port)), timeout=1):
                    pass
            except OSError:
                still.append(address)
        waiting = still
        if waiting and time.monotonic() >= deadline:
            raise StrategyError(f"the servers at {', '.join(waiting)} did not accept connections within {timeout_s:.0f} s; "
                                "check that those members started (their logs) and that the security group lets members reach each other")
        if waiting:
            time.sleep(poll_s)


def keep_functions_registered() -> None:
    """Makes this process's eager context keep every function registered in it.

    Under ParameterServerStrategy (TensorFlow 2.21 with tf-keras) removing a function once its last
    Python reference goes blocked the chief's main thread in ``Context.remove_function``, holding
    the GIL, at the end of ``fit`` for longer than the lease (15 s and more, in 7 runs of 9 here; none since, in 2):
    the heartbeat thread could not run, the chief was fenced, and the job watch restarted a set
    that had finished training. The chief is one process per attempt that exits after its export,
    so what it keeps costs only memory.
    """
    from tensorflow.python.eager import context

    context.context().remove_function = lambda name: None


def make_strategy(workers: int, ps: int, cluster_spec: Mapping[str, Sequence[str]], role: str, index: int, server_timeout_s: float = 300.0) -> Any:
    """Sets TF_CONFIG when the cluster has more than one member and builds the member's strategy.

    Must run before any other TensorFlow op: collective ops are configured at program start.

    Returns:
        ``MultiWorkerMirroredStrategy`` for several workers and no ps; with parameter servers,
        ``ParameterServerStrategy`` on the chief and the started ``tf.distribute.Server`` on a
        worker or ps; else the default strategy.
    """
    import tensorflow as tf

    if ps > 0:
        os.environ["TF_CONFIG"] = json.dumps(tf_config(cluster_spec, role, index))
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        if role != "chief":
            return tf.distribute.Server(resolver.cluster_spec(), job_name=role, task_index=index, protocol=resolver.rpc_layer or "grpc", start=True)
        wait_for_servers([*cluster_spec.get("worker", []), *cluster_spec.get("ps", [])], server_timeout_s)
        strategy = tf.distribute.ParameterServerStrategy(resolver)
        keep_functions_registered()
        return strategy
    if workers > 1:
        os.environ["TF_CONFIG"] = json.dumps(tf_config(cluster_spec, role, index))
        return tf.distribute.MultiWorkerMirroredStrategy()
    os.environ.pop("TF_CONFIG", None)
    return tf.distribute.get_strategy()
