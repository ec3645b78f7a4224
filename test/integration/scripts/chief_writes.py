"""A training chief's writes to S3 and the registry, as a real process a test can kill between them
(test/integration/worker-writes-kill.test.ts).

Usage: ``python chief_writes.py <jobId> export|checkpoint <step>|restore``

It registers as ``worker-0`` of the job (retrying while a killed predecessor's lease lapses), keeps
its lease with the worker's own :class:`LeaseKeeper`, builds a small tf-keras model, trains it one
step so the optimizer has state, and then does one thing through the worker's own
:class:`Context`, the code path a real worker takes:

- ``export``: ``ctx.export(model)`` (SavedModel files, then ``export.json``);
- ``checkpoint <step>``: ``ctx.save_checkpoint(model, step)`` (weights, then the registry record);
- ``restore``: ``ctx.restore_or_initialize(model)`` (what a restarted worker does).

It prints one JSON line: what it did, and a checksum of the model's weights.
"""
import json
import os
import sys
import time

from serverless_tf.aws import client  # first: the package makes tf.keras tf-keras before TensorFlow loads
from serverless_tf.protocol.spec import JobSpec
from serverless_tf.registry import LeaseKeeper, MemberConflictError, Registry, table_name_from_env
from serverless_tf.worker.context import Context

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def register(registry: Registry, job_id: str, lease_ms: int):
    deadline = time.monotonic() + 30
    while True:
        try:
            return registry.register(job_id, "worker", 0, "127.0.0.1:1", os.getpid(), lease_ms)
        except MemberConflictError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # the killed predecessor's lease has not lapsed yet


def checksum(model) -> float:
    return round(float(sum(np.abs(w).sum() for w in model.get_weights())), 5)


def main(job_id: str, action: str, *rest: str) -> None:
    registry = Registry(table_name_from_env())
    spec = JobSpec.from_dict(registry.get_job(job_id).spec)
    lease = register(registry, job_id, spec.lease_ms)
    keeper = LeaseKeeper(registry, job_id, "worker", 0, lease.epoch, spec.lease_ms, on_loss=lambda loss: os._exit(3))
    keeper.start()
    ctx = Context(
        job_id=job_id, mode="train", role="worker", index=0, epoch=lease.epoch, is_chief=True,
        cluster_spec={"worker": ["127.0.0.1:1"], "ps": []}, hyper_params={}, spec=spec, registry=registry,
        s3=client("s3"), sqs=client("sqs"),
    )
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(4, activation="relu"), tf.keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    if action == "restore":
        step = ctx.restore_or_initialize(model)
        print(json.dumps({"restored": step, "checksum": checksum(model)}), flush=True)
    else:
        model.fit(np.random.rand(8, 3), np.random.rand(8, 2), batch_size=8, epochs=1, verbose=0)
        if action == "export":
            manifest = ctx.export(model)
            print(json.dumps({"exported": len(manifest["files"]), "checksum": checksum(model)}), flush=True)
        elif action == "checkpoint":
            uri = ctx.save_checkpoint(model, int(rest[0]))
            print(json.dumps({"checkpoint": uri, "checksum": checksum(model)}), flush=True)
        else:
            raise SystemExit(f"unknown action {action!r}: export, checkpoint <step> or restore")
    keeper.stop()
    registry.mark_member(job_id, "worker", 0, lease.epoch, "DONE")


if __name__ == "__main__":
    main(*sys.argv[1:])
