"""Leases with fencing against a real paused worker process (SIGSTOP past its lease, then SIGCONT)."""
import os
import signal
import time

import pytest

from serverless_tf.aws import client
from serverless_tf.input.feed import FeedQueue
from serverless_tf.protocol.schema import columns_from_json
from serverless_tf.registry import FencedError, LeaseKeeper, LeaseLostError
from serverless_tf.registry.lease import SELF_FENCE_AFTER_S
from serverless_tf.worker.output import OutputWriter
from registry_helpers import unreachable_registry
from test_worker import create_job, delete_queues, env, rows_xy  # noqa: F401  (env is a fixture)


def wait_registered(env, job, index=0, deadline_s=60):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        member = next((m for m in env.registry.members(job.job_id) if m.index == index), None)
        if member is not None:
            return member
        time.sleep(0.1)
    pytest.fail("the worker never registered")


@pytest.mark.parametrize("replaced", [True, False], ids=["slot-taken-over", "lease-lapsed"])
def test_a_worker_paused_past_its_lease_is_fenced_when_it_resumes_and_exits(env, tmp_path, replaced):
    # Arrange: a two-worker job with only worker-0 started, so it heartbeats while waiting at the barrier.
    job = create_job(env, workers=2, lease_ms=3000)  # short: the test sleeps past it
    try:
        proc = job.start(0, tmp_path)
        paused = wait_registered(env, job)
        lease_ms = job.spec["leaseMs"]

        # Act: pause the process past its lease; optionally a replacement takes the slot meanwhile.
        os.kill(proc.popen.pid, signal.SIGSTOP)
        time.sleep(lease_ms / 1000 + 1.5)
        if replaced:
            env.registry.register(job.job_id, "worker", 0, "127.0.0.1:1", 99999, lease_ms)
        with pytest.raises(FencedError):
            # The paused member's own epoch can no longer renew anything: the condition refuses it.
            env.registry.heartbeat(job.job_id, "worker", 0, paused.epoch, lease_ms)
        os.kill(proc.popen.pid, signal.SIGCONT)
        code = proc.wait(timeout_s=30)

        # Assert
        assert code == 3, proc.stderr()[-2000:]
        # Whichever runs first on resume: the heartbeat, refused by condition, or the lease's own
        # expiry check (the worker fences itself without another write).
        fenced_by_registry = "worker-0 was fenced" in proc.stderr()
        assert fenced_by_registry or "worker-0 fences itself" in proc.stderr(), proc.stderr()[-2000:]
        member = next(m for m in env.registry.members(job.job_id) if m.index == 0)
        if replaced:
            assert (member.epoch, member.pid) == (paused.epoch + 1, 99999), "the replacement keeps the slot"
        else:
            assert not fenced_by_registry or "lapsed" in proc.stderr()
            assert member.status == "ACTIVE" and member.epoch == paused.epoch, "the fenced process wrote nothing after its lease lapsed"
    finally:
        delete_queues(env, [job])


def test_a_member_whose_slot_was_taken_deletes_no_feed_message_and_sends_no_output(env):
    # Arrange: worker-0's lease kept by a real keeper; its feed holds three messages it has received.
    job = create_job(env, workers=1, output_columns=[{"name": "y2", "dtype": "FLOAT32", "shape": "scalar"}])
    try:
        epoch = env.registry.register(job.job_id, "worker", 0, "127.0.0.1:1", os.getpid(), 1_500).epoch
        losses = []
        keeper = LeaseKeeper(env.registry, job.job_id, "worker", 0, epoch, 1_500, on_loss=losses.append).start()
        feed_url = job.spec["queues"]["feed"]["worker-0"]
        job.feed("worker-0", rows_xy(9), per_message=3)
        feed = FeedQueue(env.sqs, feed_url, job.job_id, "worker-0", fence=keeper.check)
        received = []
        while len(received) < 3:
            received += feed.receive(wait_seconds=1)
        keeper.check()  # held: nothing is refused yet
        output = OutputWriter(env.sqs, job.spec["queues"]["output"], job.job_id, "worker-0", columns_from_json(job.spec["output"]["columns"]), fence=keeper.check)

        # Act: a replacement's registration takes the slot (epoch + 1); the keeper's next heartbeat is fenced.
        client("dynamodb").update_item(
            TableName=env.table, Key={"pk": {"S": f"job#{job.job_id}"}, "sk": {"S": "member#worker#0"}},
            UpdateExpression="SET epoch = epoch + :one", ExpressionAttributeValues={":one": {"N": "1"}},
        )
        assert keeper.wait(10.0) is not None and losses and losses[0].reason == "fenced"

        # Assert: every write of the old member is refused before it reaches SQS.
        with pytest.raises(LeaseLostError, match="holds no lease"):
            feed.delete([r.receipt_handle for r in received])
        with pytest.raises(LeaseLostError):
            output.send([{"y2": 1.0}], row_ids=[0])
        with pytest.raises(LeaseLostError):
            output.end()
        assert env.sqs.receive_message(QueueUrl=job.spec["queues"]["output"], WaitTimeSeconds=1).get("Messages", []) == []
        for r in received:  # the feed messages are still there for the replacement
            env.sqs.change_message_visibility(QueueUrl=feed_url, ReceiptHandle=r.receipt_handle, VisibilityTimeout=0)
        back = []
        deadline = time.monotonic() + 10
        while len(back) < 3 and time.monotonic() < deadline:
            back += env.sqs.receive_message(QueueUrl=feed_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        assert len(back) == 3
    finally:
        delete_queues(env, [job])


def test_a_write_check_reports_a_lapsed_lease_itself_and_checks_nothing_once_stopped(env):
    # Arrange: a lease of 300 ms kept by a registry nothing answers (a port nothing listens on).
    job = create_job(env, workers=1)
    try:
        epoch = env.registry.register(job.job_id, "worker", 0, "127.0.0.1:1", os.getpid(), 300).epoch
        unreachable = unreachable_registry(env.table, timeout_s=0.2)
        keeper = LeaseKeeper(unreachable, job.job_id, "worker", 0, epoch, 300).start()
        keeper.check()

        # Act / Assert: past the lease and the margin, the check refuses, whichever thread noticed first.
        time.sleep(0.3 + SELF_FENCE_AFTER_S + 0.3)
        with pytest.raises(LeaseLostError):
            keeper.check()
        assert keeper.loss is not None and keeper.loss.reason == "expired"

        # A keeper its owner stopped (the member finishing) refuses nothing.
        stopped = LeaseKeeper(unreachable, job.job_id, "worker", 0, epoch, 300).start()
        stopped.stop()
        time.sleep(0.3 + SELF_FENCE_AFTER_S + 0.3)
        stopped.check()
    finally:
        delete_queues(env, [job])
