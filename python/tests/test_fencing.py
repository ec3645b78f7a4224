"""Leases with fencing against a real paused worker process (SIGSTOP past its lease, then SIGCONT)."""
import os
import signal
import time

import pytest

from serverless_tf.registry import FencedError
from test_worker import create_job, delete_queues, env  # noqa: F401  (env is a fixture)


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
