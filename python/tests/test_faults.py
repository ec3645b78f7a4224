"""The worker's AWS calls under 5 % injected faults: no visible difference."""
import threading
import uuid

import pytest

from serverless_tf.aws import client
from serverless_tf.aws.faults import FaultInjector, install
from serverless_tf.registry import Registry

from registry_helpers import put_job, transition_job


def faulty(service: str, faults: FaultInjector):
    return install(client(service), faults)


def test_fault_rate_outside_range_is_refused_naming_the_variable():
    with pytest.raises(ValueError, match="SERVERLESS_TF_FAULT_RATE"):
        FaultInjector.from_env({"SERVERLESS_TF_FAULT_RATE": "0.9"})
    assert FaultInjector.from_env({}) is None


def test_registrations_barrier_and_status_are_unchanged_by_faults(table):
    # Arrange
    faults = FaultInjector(rate=0.05, seed=11)
    registry = Registry(table, dynamodb_client=faulty("dynamodb", faults))
    job_ids = [f"flt-py-{uuid.uuid4().hex[:8]}" for _ in range(6)]

    # Act
    specs = {}
    for job_id in job_ids:
        put_job(table, job_id, state="RUNNING")
        leases = [registry.register(job_id, "worker", i, f"127.0.0.1:{9000 + i}", 500 + i, 60_000) for i in range(3)]
        results: list = []
        threads = [threading.Thread(target=lambda: results.append(registry.await_barrier(job_id, "start", {"worker": 3, "ps": 0}, 30_000))) for _ in range(3)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        for i, lease in enumerate(leases):
            registry.heartbeat(job_id, "worker", i, lease.epoch, 60_000)
            registry.mark_member(job_id, "worker", i, lease.epoch, "DONE")
        transition_job(registry, job_id, ["RUNNING"], "SUCCEEDED")
        specs[job_id] = results

    # Assert
    for job_id in job_ids:
        assert len(specs[job_id]) == 3 and all(s == specs[job_id][0] for s in specs[job_id])
        assert specs[job_id][0]["worker"] == ["127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"]
        assert [m.status for m in registry.members(job_id)] == ["DONE", "DONE", "DONE"]
        assert registry.get_job(job_id).state == "SUCCEEDED"
    assert sum(faults.counts.values()) > 0, faults.counts
    print(f"injected faults: {faults.counts}")


def test_sqs_messages_arrive_at_least_once_and_dedupe_by_id_sees_each_once():
    # Arrange
    faults = FaultInjector(rate=0.05, seed=5)
    sqs = faulty("sqs", faults)
    url = sqs.create_queue(QueueName=f"faults-py-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    ids = [f"row-{i}" for i in range(200)]
    seen: set = set()
    received = 0
    try:
        # Act
        for i in ids:
            sqs.send_message(QueueUrl=url, MessageBody=i)
        empty = 0
        while empty < 3:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            if not messages:
                empty += 1 if len(seen) == len(ids) else 0
                continue
            received += len(messages)
            seen.update(m["Body"] for m in messages)
            sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)])

        # Assert
        assert seen == set(ids)
        assert sum(faults.counts.values()) > 0, faults.counts
        print(f"sqs under faults: {len(ids)} sent, {received} received, {received - len(ids)} duplicates removed by id; injected {faults.counts}")
    finally:
        client("sqs").delete_queue(QueueUrl=url)
