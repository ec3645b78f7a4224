"""The distribution strategy of a job and the TF_CONFIG it needs.

Multi-worker jobs use MultiWorkerMirroredStrategy through tf_keras (``TF_USE_LEGACY_KERAS=1``,
set by ``serverless_tf/__init__.py`` before TensorFlow is imported): Keras 3 fails under it with
"PerReplica unsupported type" (measured here) and has no ParameterServerStrategy (keras#18624).
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence


class StrategyError(RuntimeError):
    """The cluster asks for a strategy the worker does not run."""


def tf_config(cluster_spec: Mapping[str, Sequence[str]], role: str, index: int) -> dict[str, Any]:
    """The TF_CONFIG of one member: the cluster (non-empty roles only) and its own task.

    Example:
        >>> tf_config({"worker": ["h:1", "h:2"], "ps": []}, "worker", 1)
        {'cluster': {'worker': ['h:1', 'h:2']}, 'task': {'type': 'worker', 'index': 1}}
    """
    cluster = {r: list(addresses) for r, addresses in cluster_spec.items() if addresses}
    return {"cluster": cluster, "task": {"type": role, "index": index}}


def make_strategy(workers: int, ps: int, cluster_spec: Mapping[str, Sequence[str]], role: str, index: int) -> Any:
    """Sets TF_CONFIG when the cluster has more than one member and builds the strategy.

    Must run before any other TensorFlow op: collective ops are configured at program start.

    Returns:
        ``MultiWorkerMirroredStrategy`` for several workers and no ps, else the default strategy.

    Raises:
        StrategyError: for a cluster with parameter servers (refused by the TypeScript
            validation too; the worker says so again rather than training wrongly).
    """
    if ps > 0:
        raise StrategyError(
            f"this worker runs no parameter-server training. Received: cluster={{'worker': {workers}, 'ps': {ps}}}; "
            "set the ps count to 0 (Keras has no ParameterServerStrategy support, keras#18624)"
        )
    import tensorflow as tf

    if workers > 1:
        os.environ["TF_CONFIG"] = json.dumps(tf_config(cluster_spec, role, index))
        return tf.distribute.MultiWorkerMirroredStrategy()
    os.environ.pop("TF_CONFIG", None)
    return tf.distribute.get_strategy()
