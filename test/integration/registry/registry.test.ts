import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { DeleteTableCommand, DescribeTableCommand, DescribeTimeToLiveCommand } from "@aws-sdk/client-dynamodb";
import { createAwsClients, destroyAwsClients } from "../../../src/aws/clients.ts";
import { BarrierTimeoutError, FencedError, JobConflictError, JobNotFoundError, JobStateError, MemberConflictError, Registry, ShardRewindError, ensureRegistryTable, registryTableName, type BarrierAttempt, type BarrierInput } from "../../../src/registry/index.ts";

const clients = createAwsClients();
const table = registryTableName();
const jobs: string[] = [];

/** A fresh job id per test; every job is deleted after the suite. */
function newJobId(): string {
  const id = `reg-${randomUUID().slice(0, 8)}`;
  jobs.push(id);
  return id;
}

/** A clock the test moves by hand: leases expire without sleeping. */
function manualClock(start = Date.now()) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

/** Settles `p` to the error it rejects with, so a refused call can be made in Act and judged in Assert. */
const rejection = (p: Promise<unknown>): Promise<unknown> => p.then(() => assert.fail("expected the call to be refused"), (e: unknown) => e);

const spec = { version: 1, cluster: { worker: 2, ps: 0 } };

before(() => ensureRegistryTable(clients, table));
after(async () => {
  const registry = new Registry(clients, table);
  await Promise.all(jobs.map((id) => registry.deleteJob(id)));
  destroyAwsClients(clients);
});

describe("ensureRegistryTable", () => {
  it("creates the table once when called concurrently, with pk/sk keys and TTL on expiresAt", async () => {
    // Arrange
    const name = `registry-ensure-${randomUUID().slice(0, 8)}`;
    try {
      // Act
      await Promise.all([1, 2, 3, 4].map(() => ensureRegistryTable(clients, name)));
      await ensureRegistryTable(clients, name);

      // Assert
      const { Table } = await clients.dynamodb.send(new DescribeTableCommand({ TableName: name }));
      assert.equal(Table?.TableStatus, "ACTIVE");
      assert.deepEqual(Table?.KeySchema, [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ]);
      const ttl = await clients.dynamodb.send(new DescribeTimeToLiveCommand({ TableName: name }));
      assert.equal(ttl.TimeToLiveDescription?.AttributeName, "expiresAt");
    } finally {
      await clients.dynamodb.send(new DeleteTableCommand({ TableName: name }));
    }
  });
});

describe("jobs", () => {
  it("creates a job in CREATED at rev 1 and refuses a second job with the same id", async () => {
    // Arrange
    const registry = new Registry(clients, table);
    const jobId = newJobId();

    // Act
    const created = await registry.createJob({ jobId, mode: "train", spec });
    const again = await rejection(registry.createJob({ jobId, mode: "inference", spec: {} }));

    // Assert
    assert.equal(created.state, "CREATED");
    assert.equal(created.rev, 1);
    assert.ok(again instanceof JobConflictError, String(again));
    assert.equal(again.jobId, jobId);
    assert.equal(again.existingState, "CREATED");
    const stored = await registry.getJob(jobId);
    assert.equal(stored?.mode, "train");
    assert.deepEqual(stored?.spec, spec);
  });

  it("moves the job only from an expected state, adding one to rev on each move", async () => {
    // Arrange
    const registry = new Registry(clients, table);
    const jobId = newJobId();
    await registry.createJob({ jobId, mode: "train", spec });

    // Act
    const running = await registry.transitionJob(jobId, ["CREATED"], "RUNNING");
    const refused = await rejection(registry.transitionJob(jobId, ["CREATED", "STOPPING"], "STOPPED"));
    const done = await registry.transitionJob(jobId, ["RUNNING"], "SUCCEEDED", { modelUri: "s3://b/models/m/versions/1/metadata.json" });

    // Assert
    assert.equal(running.rev, 2);
    assert.ok(refused instanceof JobStateError, String(refused));
    assert.deepEqual([refused.expected, refused.actual, refused.attempted], [["CREATED", "STOPPING"], "RUNNING", "STOPPED"]);
    assert.equal(done.state, "SUCCEEDED");
    assert.equal(done.rev, 3);
    assert.equal((await registry.getJob(jobId))?.modelUri, "s3://b/models/m/versions/1/metadata.json");
  });

  it("reports a transition of a job that does not exist as JobNotFoundError", async () => {
    // Arrange
    const registry = new Registry(clients, table);

    // Act
    const move = await rejection(registry.transitionJob(newJobId(), ["CREATED"], "RUNNING"));

    // Assert
    assert.ok(move instanceof JobNotFoundError, String(move));
  });

  it("deletes every item of a job and nothing of another job", async () => {
    // Arrange
    const registry = new Registry(clients, table);
    const [jobId, other] = [newJobId(), newJobId()];
    for (const id of [jobId, other]) {
      await registry.createJob({ jobId: id, mode: "train", spec });
      const lease = await registry.register({ jobId: id, role: "worker", index: 0, address: "127.0.0.1:1", pid: 1, leaseMs: 60_000 });
      await registry.recordCheckpoint(id, { step: 1, uri: "s3://b/c", feedPosition: 0, writer: { role: "worker", index: 0, epoch: lease.epoch } });
    }

    // Act
    const deleted = await registry.deleteJob(jobId);

    // Assert
    assert.equal(deleted, 3);
    assert.equal(await registry.getJob(jobId), undefined);
    assert.deepEqual(await registry.members(jobId), []);
    assert.equal((await registry.members(other)).length, 1);
  });
});

describe("members and barriers", () => {
  it("registers 8 members at once at epoch 1, and the barrier raced by all 8 is released by exactly one put", async () => {
    // Arrange: 8 processes, each with its own registry client, counting which of their puts won.
    const jobId = newJobId();
    const wins: boolean[] = [];
    class CountingRegistry extends Registry {
      override async releaseBarrier(input: BarrierInput): Promise<BarrierAttempt> {
        const attempt = await super.releaseBarrier(input);
        if (attempt.kind === "released") wins.push(attempt.won);
        return attempt;
      }
    }
    const slots = [...Array.from({ length: 6 }, (_, i) => ({ role: "worker" as const, index: i })), { role: "ps" as const, index: 0 }, { role: "ps" as const, index: 1 }];
    await new Registry(clients, table).createJob({ jobId, mode: "train", spec });

    // Act
    const leases = await Promise.all(
      slots.map((s) => new CountingRegistry(clients, table).register({ jobId, ...s, address: `10.0.0.${s.index}:${s.role === "ps" ? 3333 : 2222}`, pid: 100 + s.index, leaseMs: 60_000 })),
    );
    const specs = await Promise.all(slots.map(() => new CountingRegistry(clients, table).awaitBarrier({ jobId, name: "start", expected: { worker: 6, ps: 2 }, timeoutMs: 10_000, pollMs: 20 })));

    // Assert
    assert.deepEqual(leases.map((l) => l.epoch), [1, 1, 1, 1, 1, 1, 1, 1]);
    assert.equal(wins.filter(Boolean).length, 1);
    assert.equal(wins.length, 8);
    const expected = { worker: ["10.0.0.0:2222", "10.0.0.1:2222", "10.0.0.2:2222", "10.0.0.3:2222", "10.0.0.4:2222", "10.0.0.5:2222"], ps: ["10.0.0.0:3333", "10.0.0.1:3333"] };
    for (const s of specs) assert.deepEqual(s, expected);
    const barrier = await new Registry(clients, table).getBarrier(jobId, "start");
    assert.deepEqual(barrier?.epochs, { "worker-0": 1, "worker-1": 1, "worker-2": 1, "worker-3": 1, "worker-4": 1, "worker-5": 1, "ps-0": 1, "ps-1": 1 });
  });

  it("refuses a second registration of a slot whose lease is live, naming the holder", async () => {
    // Arrange
    const clock = manualClock();
    const registry = new Registry(clients, table, clock.now);
    const jobId = newJobId();
    const first = await registry.register({ jobId, role: "worker", index: 0, address: "10.0.0.1:2222", pid: 11, leaseMs: 10_000 });
    clock.advance(9_999);

    // Act
    const second = await rejection(registry.register({ jobId, role: "worker", index: 0, address: "10.0.0.2:2222", pid: 22, leaseMs: 10_000 }));

    // Assert
    assert.ok(second instanceof MemberConflictError, String(second));
    assert.deepEqual([second.role, second.index, second.holderEpoch, second.holderAddress, second.leaseExpiresAt], ["worker", 0, 1, "10.0.0.1:2222", first.leaseExpiresAt]);
  });

  it("accepts a repeated registration from the same process, as an SDK retry would send", async () => {
    // Arrange
    const registry = new Registry(clients, table);
    const jobId = newJobId();
    const member = { jobId, role: "worker", index: 0, address: "10.0.0.1:2222", pid: 11, leaseMs: 10_000 } as const;
    await registry.register(member);

    // Act
    const again = await registry.register(member);

    // Assert
    assert.equal(again.epoch, 2);
  });

  it("lets a new registration take a slot whose lease expired, at epoch 2, and fences the old epoch", async () => {
    // Arrange
    const clock = manualClock();
    const registry = new Registry(clients, table, clock.now);
    const jobId = newJobId();
    const old = await registry.register({ jobId, role: "worker", index: 1, address: "10.0.0.1:2222", pid: 11, leaseMs: 10_000 });
    await registry.heartbeat({ jobId, role: "worker", index: 1, epoch: old.epoch, leaseMs: 10_000, progress: { step: 7, rowsConsumed: 448 } });
    clock.advance(10_001);

    // Act
    const taken = await registry.register({ jobId, role: "worker", index: 1, address: "10.0.0.2:2222", pid: 22, leaseMs: 10_000 });
    const oldHeartbeat = await rejection(registry.heartbeat({ jobId, role: "worker", index: 1, epoch: old.epoch, leaseMs: 10_000 }));
    const oldMark = await rejection(registry.markMember({ jobId, role: "worker", index: 1, epoch: old.epoch, status: "DONE" }));

    // Assert
    assert.equal(taken.epoch, 2);
    for (const refused of [oldHeartbeat, oldMark]) {
      assert.ok(refused instanceof FencedError, String(refused));
      assert.deepEqual([refused.epoch, refused.currentEpoch, refused.currentStatus], [1, 2, "ACTIVE"]);
    }
    const [member] = await registry.members(jobId);
    assert.equal(member?.address, "10.0.0.2:2222");
    assert.equal(member?.progress, undefined, "a new registration starts without the old member's progress");
  });

  it("refuses to renew a lease that lapsed, even for the holder of its epoch, saying when it lapsed", async () => {
    // Arrange
    const clock = manualClock();
    const registry = new Registry(clients, table, clock.now);
    const jobId = newJobId();
    const lease = await registry.register({ jobId, role: "worker", index: 0, address: "10.0.0.1:2222", pid: 11, leaseMs: 5_000 });
    clock.advance(5_001);

    // Act
    const refused = await rejection(registry.heartbeat({ jobId, role: "worker", index: 0, epoch: lease.epoch, leaseMs: 5_000 }));

    // Assert
    assert.ok(refused instanceof FencedError, String(refused));
    assert.equal(refused.leaseExpiredAt, lease.leaseExpiresAt);
    assert.match(refused.message, /lapsed/);
    const [member] = await registry.members(jobId);
    assert.equal(member?.leaseExpiresAt, lease.leaseExpiresAt, "the lapsed lease was not extended");
  });

  it("lets the holder of the current epoch heartbeat, record progress and mark itself DONE once or twice", async () => {
    // Arrange
    const clock = manualClock();
    const registry = new Registry(clients, table, clock.now);
    const jobId = newJobId();
    const { epoch } = await registry.register({ jobId, role: "ps", index: 0, address: "10.0.0.1:3333", pid: 11, leaseMs: 1_000 });
    clock.advance(900);

    // Act
    const beat = await registry.heartbeat({ jobId, role: "ps", index: 0, epoch, leaseMs: 1_000, progress: { step: 3, rowsConsumed: 96 } });
    await registry.markMember({ jobId, role: "ps", index: 0, epoch, status: "DONE" });
    await registry.markMember({ jobId, role: "ps", index: 0, epoch, status: "DONE" });
    const afterDone = await rejection(registry.heartbeat({ jobId, role: "ps", index: 0, epoch, leaseMs: 1_000 }));

    // Assert
    assert.equal(beat.leaseExpiresAt, clock.now() + 1_000);
    const [member] = await registry.members(jobId);
    assert.deepEqual(member?.progress, { step: 3, rowsConsumed: 96 });
    assert.equal(member?.status, "DONE");
    assert.ok(afterDone instanceof FencedError, String(afterDone));
    assert.equal(afterDone.currentStatus, "DONE");
  });

  it("times out a barrier naming the member that never registered and the one whose lease expired", async () => {
    // Arrange
    const clock = manualClock();
    const registry = new Registry(clients, table, clock.now);
    const jobId = newJobId();
    await registry.register({ jobId, role: "worker", index: 0, address: "10.0.0.1:2222", pid: 11, leaseMs: 60_000 });
    await registry.register({ jobId, role: "ps", index: 0, address: "10.0.0.9:3333", pid: 19, leaseMs: 1_000 });
    clock.advance(5_000);
    await registry.heartbeat({ jobId, role: "worker", index: 0, epoch: 1, leaseMs: 60_000 });

    // Act
    const started = performance.now();
    const wait = await rejection(registry.awaitBarrier({ jobId, name: "start", expected: { worker: 2, ps: 1 }, timeoutMs: 300, pollMs: 50 }));

    // Assert
    assert.ok(wait instanceof BarrierTimeoutError, String(wait));
    assert.deepEqual(wait.missing.map((m) => m.split(" ")[0]), ["worker-1", "ps-0"]);
    assert.match(wait.message, /worker-1 \(not registered\)/);
    assert.match(wait.message, /ps-0 \(lease expired/);
    assert.ok(performance.now() - started >= 300);
    assert.equal(await registry.getBarrier(jobId, "start"), undefined);
  });
});

describe("shards and checkpoints", () => {
  it("never moves a shard cursor backwards, but accepts the same progress again", async () => {
    // Arrange
    const registry = new Registry(clients, table);
    const jobId = newJobId();
    const progress = (cursor: number, seq: number, done = false) => ({ cursor, seq, done, rowsPerMember: { "worker-0": cursor }, messagesPerMember: { "worker-0": seq } });
    await registry.recordShardProgress(jobId, "part-0000", progress(500, 5));

    // Act
    const retried = await registry.recordShardProgress(jobId, "part-0000", progress(500, 5));
    const rewind = await rejection(registry.recordShardProgress(jobId, "part-0000", progress(200, 2)));
    await registry.recordShardProgress(jobId, "part-0000", progress(800, 8, true));
    const reopen = await rejection(registry.recordShardProgress(jobId, "part-0000", progress(800, 8, false)));

    // Assert
    assert.equal(retried.cursor, 500);
    assert.ok(rewind instanceof ShardRewindError, String(rewind));
    assert.deepEqual([rewind.current.cursor, rewind.attempted.cursor], [500, 200]);
    assert.ok(reopen instanceof ShardRewindError, String(reopen));
    assert.equal(reopen.current.done, true);
    assert.deepEqual(await registry.getShard(jobId, "part-0000"), { jobId, shardId: "part-0000", ...progress(800, 8, true) });
    assert.equal((await registry.shards(jobId)).length, 1);
  });

  it("returns the checkpoint with the highest step as the latest, whatever the order they were recorded in", async () => {
    // Arrange
    const registry = new Registry(clients, table);
    const jobId = newJobId();
    const empty = await registry.latestCheckpoint(jobId);
    const lease = await registry.register({ jobId, role: "worker", index: 0, address: "10.0.0.1:2222", pid: 11, leaseMs: 60_000 });
    const writer = { role: "worker" as const, index: 0, epoch: lease.epoch };

    // Act: 120 after 30 in number, before it as unpadded text
    for (const step of [30, 120, 5]) await registry.recordCheckpoint(jobId, { step, uri: `s3://b/jobs/${jobId}/checkpoints/ckpt-${step}`, feedPosition: step * 64, writer });
    const latest = await registry.latestCheckpoint(jobId);

    // Assert
    assert.equal(empty, undefined);
    assert.equal(latest?.step, 120);
    assert.equal(latest?.feedPosition, 120 * 64);
    assert.equal(latest?.member, "worker-0");
    assert.equal(latest?.uri, `s3://b/jobs/${jobId}/checkpoints/ckpt-120`);
  });

  it("refuses a checkpoint from a writer whose lease was taken over, and keeps the one in force", async () => {
    // Arrange
    const clock = manualClock();
    const registry = new Registry(clients, table, clock.now);
    const jobId = newJobId();
    const old = await registry.register({ jobId, role: "worker", index: 0, address: "10.0.0.1:2222", pid: 11, leaseMs: 5_000 });
    const writer = { role: "worker" as const, index: 0, epoch: old.epoch };
    await registry.recordCheckpoint(jobId, { step: 10, uri: `s3://b/jobs/${jobId}/checkpoints/step-10-e1/`, feedPosition: 640, writer });
    clock.advance(5_001);
    await registry.register({ jobId, role: "worker", index: 0, address: "10.0.0.2:2222", pid: 22, leaseMs: 5_000 });

    // Act
    const refused = await rejection(registry.recordCheckpoint(jobId, { step: 20, uri: `s3://b/jobs/${jobId}/checkpoints/step-20-e1/`, feedPosition: 1280, writer }));

    // Assert
    assert.ok(refused instanceof FencedError, String(refused));
    assert.equal(refused.currentEpoch, old.epoch + 1);
    assert.equal((await registry.latestCheckpoint(jobId))?.step, 10);
  });
});
