import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from serverless_tf.aws import client
from serverless_tf.registry import (
    BarrierTimeoutError,
    FencedError,
    LeaseKeeper,
    LeaseLoss,
    MemberConflictError,
    Progress,
    Registry,
    now_ms,
)
from serverless_tf.registry.lease import SELF_FENCE_AFTER_S

from registry_helpers import JobStateError, put_job, transition_job, unreachable_registry

ROOT = Path(__file__).resolve().parents[2]


class ManualClock:
    """A clock the test moves by hand: leases expire without sleeping."""

    def __init__(self) -> None:
        self.t = now_ms()

    def __call__(self) -> int:
        return self.t

    def advance(self, ms: int) -> None:
        self.t += ms


@pytest.fixture
def job_id(table):
    """A fresh job id; every item of the job is deleted after the test."""
    jid = f"reg-py-{uuid.uuid4().hex[:8]}"
    yield jid
    ddb = client("dynamodb")
    items = ddb.query(TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": f"job#{jid}"}}, ConsistentRead=True)["Items"]
    for item in items:
        ddb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})


def run_ts(source: str) -> str:
    """Runs a TypeScript module body in node (tsx) with the test environment; returns its stdout."""
    node = shutil.which("node")
    assert node, "node must be on PATH to check interop with the TypeScript registry"
    done = subprocess.run([node, "--import", "tsx", "--input-type=module", "-e", source], cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_member_registered_from_python_has_the_protocol_item_layout(table, job_id):
    # Arrange
    registry = Registry(table)
    put_job(table, job_id)

    # Act
    lease = registry.register(job_id, "worker", 0, "10.0.0.1:2222", 4242, 10_000)
    registry.heartbeat(job_id, "worker", 0, lease.epoch, 10_000, Progress(step=7, rows_consumed=448))
    item = client("dynamodb").get_item(TableName=table, Key={"pk": {"S": f"job#{job_id}"}, "sk": {"S": "member#worker#0"}}, ConsistentRead=True)["Item"]

    # Assert
    assert {k: v for k, v in item.items() if k not in ("leaseExpiresAt", "heartbeatAt", "expiresAt")} == {
        "pk": {"S": f"job#{job_id}"}, "sk": {"S": "member#worker#0"}, "role": {"S": "worker"}, "index": {"N": "0"},
        "address": {"S": "10.0.0.1:2222"}, "epoch": {"N": "1"}, "status": {"S": "ACTIVE"}, "pid": {"N": "4242"},
        "progress": {"M": {"step": {"N": "7"}, "rowsConsumed": {"N": "448"}}},
    }
    assert int(item["leaseExpiresAt"]["N"]) - int(item["heartbeatAt"]["N"]) == 10_000
    assert abs(int(item["expiresAt"]["N"]) - now_ms() // 1000 - 7 * 24 * 3600) < 60, "expiresAt is in epoch seconds"


def test_typescript_registry_reads_a_python_member_and_both_see_one_barrier(table, job_id):
    # Arrange: TS creates the job and registers worker-0; Python registers worker-1.
    ts_prelude = (
        'import { createAwsClients, destroyAwsClients } from "./src/aws/clients.ts";'
        'import { Registry } from "./src/registry/index.ts";'
        f'const clients = createAwsClients(); const r = new Registry(clients, {json.dumps(table)}); const jobId = {json.dumps(job_id)};'
    )
    run_ts(ts_prelude + 'await r.createJob({ jobId, mode: "train", spec: { version: 1 } });'
           'await r.register({ jobId, role: "worker", index: 0, address: "10.0.0.1:2222", pid: 1, leaseMs: 60_000 }); destroyAwsClients(clients);')
    registry = Registry(table)
    registry.register(job_id, "worker", 1, "10.0.0.2:2222", os.getpid(), 60_000)

    # Act
    py_spec = registry.await_barrier(job_id, "start", {"worker": 2, "ps": 0}, timeout_ms=5_000, poll_ms=20)
    ts_view = json.loads(run_ts(ts_prelude + 'console.log(JSON.stringify({ members: await r.members(jobId), '
                                "spec: await r.awaitBarrier({ jobId, name: \"start\", expected: { worker: 2, ps: 0 }, timeoutMs: 5000 }), "
                                "job: await r.getJob(jobId) })); destroyAwsClients(clients);"))

    # Assert
    assert py_spec == {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"], "ps": []}
    assert ts_view["spec"] == py_spec
    assert [(m["role"], m["index"], m["epoch"], m["status"], m["pid"]) for m in ts_view["members"]] == [("worker", 0, 1, "ACTIVE", 1), ("worker", 1, 1, "ACTIVE", os.getpid())]
    assert registry.get_job(job_id).rev == ts_view["job"]["rev"] == 1


def test_job_moves_only_from_an_expected_state(table, job_id):
    # Arrange
    registry = Registry(table)
    put_job(table, job_id)

    # Act
    running = transition_job(registry, job_id, ["CREATED"], "RUNNING")
    with pytest.raises(JobStateError) as refused:
        transition_job(registry, job_id, ["CREATED"], "STOPPED")
    failed = transition_job(registry, job_id, ["RUNNING"], "FAILED", error="worker-0 ran out of memory")

    # Assert
    assert (running.state, running.rev) == ("RUNNING", 2)
    assert (refused.value.actual, refused.value.expected, refused.value.attempted) == ("RUNNING", ("CREATED",), "STOPPED")
    assert (failed.state, failed.rev, failed.error) == ("FAILED", 3, "worker-0 ran out of memory")


def test_eight_threads_register_at_epoch_1_and_all_get_the_one_released_cluster_spec(table, job_id):
    # Arrange
    slots = [("worker", i) for i in range(6)] + [("ps", 0), ("ps", 1)]
    results: dict = {}
    errors: list = []
    start = threading.Barrier(len(slots))

    def member(role: str, index: int) -> None:
        try:
            registry = Registry(table, client("dynamodb"))
            start.wait()
            lease = registry.register(job_id, role, index, f"10.0.1.{index}:{2222 if role == 'worker' else 3333}", 1000 + index, 60_000)
            spec = registry.await_barrier(job_id, "start", {"worker": 6, "ps": 2}, timeout_ms=10_000, poll_ms=20)
            results[(role, index)] = (lease.epoch, spec)
        except Exception as e:  # reported by the assertion below
            errors.append(e)

    # Act
    threads = [threading.Thread(target=member, args=slot) for slot in slots]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    # Assert
    assert errors == []
    assert sorted(epoch for epoch, _ in results.values()) == [1] * 8
    expected = {"worker": [f"10.0.1.{i}:2222" for i in range(6)], "ps": ["10.0.1.0:3333", "10.0.1.1:3333"]}
    assert all(spec == expected for _, spec in results.values())
    barrier = client("dynamodb").get_item(TableName=table, Key={"pk": {"S": f"job#{job_id}"}, "sk": {"S": "barrier#start"}}, ConsistentRead=True)["Item"]
    assert json.loads(barrier["epochs"]["S"]) == {f"worker-{i}": 1 for i in range(6)} | {"ps-0": 1, "ps-1": 1}


def test_a_live_slot_is_refused_and_an_expired_one_is_taken_at_epoch_2_fencing_the_old_epoch(table, job_id):
    # Arrange
    clock = ManualClock()
    registry = Registry(table, now=clock)
    old = registry.register(job_id, "worker", 0, "10.0.0.1:2222", 11, 10_000)
    with pytest.raises(MemberConflictError) as conflict:
        registry.register(job_id, "worker", 0, "10.0.0.2:2222", 22, 10_000)
    clock.advance(10_001)

    # Act
    new = registry.register(job_id, "worker", 0, "10.0.0.2:2222", 22, 10_000)
    with pytest.raises(FencedError) as heartbeat_refused:
        registry.heartbeat(job_id, "worker", 0, old.epoch, 10_000)
    with pytest.raises(FencedError) as mark_refused:
        registry.mark_member(job_id, "worker", 0, old.epoch, "DONE")
    registry.mark_member(job_id, "worker", 0, new.epoch, "FAILED", error="boom")

    # Assert
    assert (conflict.value.holder_epoch, conflict.value.holder_address, conflict.value.lease_expires_at) == (1, "10.0.0.1:2222", old.lease_expires_at)
    assert new.epoch == 2
    assert (heartbeat_refused.value.epoch, heartbeat_refused.value.current_epoch, heartbeat_refused.value.current_status) == (1, 2, "ACTIVE")
    assert mark_refused.value.current_epoch == 2
    [member] = registry.members(job_id)
    assert (member.epoch, member.status, member.error, member.address) == (2, "FAILED", "boom", "10.0.0.2:2222")


def test_barrier_timeout_names_the_missing_member(table, job_id):
    # Arrange
    registry = Registry(table)
    registry.register(job_id, "worker", 0, "10.0.0.1:2222", 11, 60_000)

    # Act
    with pytest.raises(BarrierTimeoutError) as timeout:
        registry.await_barrier(job_id, "start", {"worker": 2, "ps": 0}, timeout_ms=200, poll_ms=50)

    # Assert
    assert timeout.value.missing == ["worker-1 (not registered)"]
    assert "worker-1" in str(timeout.value)


def test_lease_keeper_extends_the_lease_then_stops_and_reports_when_fenced(table, job_id):
    # Arrange
    registry = Registry(table)
    put_job(table, job_id, "RUNNING")
    # A lease long enough that a loaded machine (2 cores, the soak beside the suite) still renews it in time.
    lease = registry.register(job_id, "worker", 0, "10.0.0.1:2222", 11, 1_500)
    lost = threading.Event()
    losses: list = []
    keeper = LeaseKeeper(registry, job_id, "worker", 0, lease.epoch, 1_500, on_loss=lambda loss: (losses.append(loss), lost.set()),
                         progress=lambda: Progress(step=1, rows_consumed=32)).start()
    # a member that sees the lease as expired: its clock is ahead by more than the lease
    taker = Registry(table, now=lambda: now_ms() + 10_000)

    # Act
    assert _wait_until(lambda: keeper.heartbeats >= 2, 15.0), "the keeper heartbeats every lease_ms / 3"
    extended = registry.members(job_id)[0].lease_expires_at
    taken = taker.register(job_id, "worker", 0, "10.0.0.2:2222", 22, 1_500)
    reported = lost.wait(15.0)
    keeper.wait(15.0)

    # Assert
    assert extended > lease.lease_expires_at
    assert taken.epoch == 2
    assert reported and not keeper.running
    assert len(losses) == 1 and isinstance(losses[0], LeaseLoss)
    assert losses[0].reason == "fenced" and isinstance(losses[0].error, FencedError)
    assert keeper.loss is losses[0]


def test_lease_keeper_stops_and_reports_when_the_job_reaches_a_final_state(table, job_id):
    # Arrange
    registry = Registry(table)
    put_job(table, job_id, "RUNNING")
    lease = registry.register(job_id, "worker", 0, "10.0.0.1:2222", 11, 1_500)
    lost = threading.Event()
    keeper = LeaseKeeper(registry, job_id, "worker", 0, lease.epoch, 1_500, on_loss=lambda loss: lost.set()).start()

    # Act
    transition_job(registry, job_id, ["RUNNING"], "STOPPED")
    reported = lost.wait(15.0)
    keeper.wait(15.0)

    # Assert
    assert reported and not keeper.running
    assert (keeper.loss.reason, keeper.loss.job_state) == ("job-ended", "STOPPED")


def test_lease_keeper_stop_ends_the_thread_without_a_loss(table, job_id):
    # Arrange
    registry = Registry(table)
    put_job(table, job_id, "RUNNING")
    lease = registry.register(job_id, "worker", 0, "10.0.0.1:2222", 11, 3_000)

    # Act
    with LeaseKeeper(registry, job_id, "worker", 0, lease.epoch, 3_000) as keeper:
        pass

    # Assert
    assert not keeper.running
    assert keeper.loss is None


def test_latest_checkpoint_is_the_highest_step(table, job_id):
    # Arrange
    registry = Registry(table)
    assert registry.latest_checkpoint(job_id) is None
    lease = registry.register(job_id, "worker", 0, "10.0.0.1:2222", 11, 60_000)

    # Act: 120 after 30 in number, before it as unpadded text
    for step in (30, 120, 5):
        registry.record_checkpoint(job_id, step, f"s3://b/jobs/{job_id}/checkpoints/ckpt-{step}", step * 64, "worker", 0, lease.epoch)
    latest = registry.latest_checkpoint(job_id)

    # Assert
    assert (latest.step, latest.feed_position, latest.member) == (120, 120 * 64, "worker-0")
    raw = client("dynamodb").get_item(TableName=table, Key={"pk": {"S": f"job#{job_id}"}, "sk": {"S": "checkpoint#000000000120"}}, ConsistentRead=True)
    assert raw["Item"]["uri"]["S"] == latest.uri


@pytest.mark.parametrize("how", ["replaced", "lapsed", "done"])
def test_a_checkpoint_is_refused_unless_its_writer_still_holds_the_lease(table, job_id, how):
    # Arrange: worker-0 published step 10; then its lease is taken over, lapses, or it left ACTIVE.
    clock = ManualClock()
    registry = Registry(table, now=clock)
    old = registry.register(job_id, "worker", 0, "10.0.0.1:2222", 11, 10_000)
    registry.record_checkpoint(job_id, 10, f"s3://b/jobs/{job_id}/checkpoints/step-10-e1/", 640, "worker", 0, old.epoch)
    if how == "replaced":
        clock.advance(10_001)
        registry.register(job_id, "worker", 0, "10.0.0.2:2222", 22, 10_000)
    elif how == "lapsed":
        clock.advance(10_001)
    else:
        registry.mark_member(job_id, "worker", 0, old.epoch, "DONE")

    # Act
    with pytest.raises(FencedError) as refused:
        registry.record_checkpoint(job_id, 20, f"s3://b/jobs/{job_id}/checkpoints/step-20-e1/", 1280, "worker", 0, old.epoch)

    # Assert
    assert refused.value.epoch == old.epoch
    says = {"replaced": "Another registration took over", "lapsed": "lapsed", "done": "left ACTIVE"}[how]
    assert says in str(refused.value), str(refused.value)
    assert registry.latest_checkpoint(job_id).step == 10, "the checkpoint in force is the last one its writer published under a live lease"


def _wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_lease_keeper_fences_its_worker_when_no_heartbeat_renews_the_lease(table, job_id):
    # Arrange: the lease is taken, then the registry cannot be reached (a real client of a port nothing listens on).
    registry = Registry(table)
    put_job(table, job_id, "RUNNING")
    lease = registry.register(job_id, "worker", 0, "10.0.0.1:2222", 11, 1_000)
    unreachable = unreachable_registry(table)
    lost = threading.Event()
    started = time.monotonic()
    keeper = LeaseKeeper(unreachable, job_id, "worker", 0, lease.epoch, 1_000, on_loss=lambda loss: lost.set()).start()

    # Act
    reported = lost.wait(15.0)
    waited = time.monotonic() - started

    # Assert: it stops itself after the lease and the self-fencing margin, naming the last error.
    assert reported and keeper.loss is not None and keeper.loss.reason == "expired"
    assert "within its 1000 ms" in keeper.loss.detail and "last error" in keeper.loss.detail
    assert waited >= 1.0 + SELF_FENCE_AFTER_S - 0.1
