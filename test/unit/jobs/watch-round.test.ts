/**
 * The watch's decisions as a pure function of fabricated registry states: the same function the
 * local watch loop and the job-watch stage on AWS call every round.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseJobWatchEvent, type WatchPolicy, type WatchState } from "../../../src/protocol/watch-message.ts";
import { EventShapeError } from "../../../src/protocol/errors.ts";
import type { WorkerExit } from "../../../src/workers/launcher.ts";
import type { MemberRecord } from "../../../src/registry/types.ts";
import { COMPLETE, PENDING, decideWatchRound, initialWatchState, type WatchObservation } from "../../../src/jobs/watch-round.ts";
import { WORKER_EXITS } from "../../../src/protocol/worker-exits.ts";

import { JOB_WATCH } from "../../../src/resources/definitions.ts";
import { firstWatchMessage } from "../../../src/jobs/watch-queue.ts";

const T0 = 1_700_000_000_000;
const policy: WatchPolicy = { timeoutMs: 60_000, leaseGraceMs: 5_000, maxWorkerRestarts: 1, progressTimeoutMs: 10_000 };

function member(index: number, patch: Partial<MemberRecord> = {}): MemberRecord {
  return { jobId: "fit-watch", role: "worker", index, address: `10.0.0.${index}:2222`, epoch: 1, leaseExpiresAt: T0 + 15_000, heartbeatAt: T0, status: "ACTIVE", pid: 100 + index, ...patch };
}

function observe(patch: Partial<WatchObservation> = {}): WatchObservation {
  return { now: T0, job: { state: "RUNNING" }, members: [member(0), member(1)], exits: [], completion: PENDING, ...patch };
}

const exit = (index: number, code: number | null, tail = "Traceback ...\nValueError: boom"): WorkerExit => ({ member: { role: "worker", index }, code, signal: null, tail });

/** Runs rounds like a watcher: the state of each `continue` goes to the next. */
function rounds(observations: readonly WatchObservation[], state: WatchState = initialWatchState(T0)) {
  let decision = decideWatchRound(observations[0]!, state, policy);
  for (const o of observations.slice(1)) {
    assert.equal(decision.kind, "continue");
    if (decision.kind === "continue") decision = decideWatchRound(o, decision.state, policy);
  }
  return decision;
}

describe("decideWatchRound", () => {
  it("continues while every member is ACTIVE within its lease and the job is not complete", () => {
    const decision = decideWatchRound(observe(), initialWatchState(T0), policy);
    assert.equal(decision.kind, "continue");
  });

  it("succeeds once the job is complete", () => {
    const decision = decideWatchRound(observe({ members: [member(0, { status: "DONE" }), member(1, { status: "DONE" })], completion: COMPLETE }), initialWatchState(T0), policy);
    assert.deepEqual(decision, { kind: "succeed" });
  });

  it("fails with the registry's reason when the job is FAILED", () => {
    const decision = decideWatchRound(observe({ job: { state: "FAILED", error: "shard s00001 is corrupt" } }), initialWatchState(T0), policy);
    assert.deepEqual(decision, { kind: "fail", failure: { kind: "job-failed", reason: "shard s00001 is corrupt" } });
  });

  it("fails with the member and its reason when a current member is FAILED, even if the rest are complete", () => {
    const decision = decideWatchRound(observe({ members: [member(0, { status: "DONE" }), member(1, { status: "FAILED", error: "ValueError: boom" })], completion: COMPLETE }), initialWatchState(T0), policy);
    assert.deepEqual(decision, { kind: "fail", failure: { kind: "member-failed", member: "worker-1", reason: "ValueError: boom" } });
  });

  it("fails with the reason and traceback tail when a process exits with an error and its member wrote FAILED meanwhile", () => {
    const decision = decideWatchRound(observe({ exits: [exit(1, 1)], membersAfterExit: [member(0), member(1, { status: "FAILED", error: "ValueError: boom" })] }), initialWatchState(T0), policy);
    assert.deepEqual(decision, { kind: "fail", failure: { kind: "member-failed", member: "worker-1", reason: "ValueError: boom", tail: "Traceback ...\nValueError: boom" } });
  });

  it("restarts when a worker was killed even though its peer already reported FAILED from the aborted collective", () => {
    // Arrange: worker-1 SIGKILLed; worker-0's all-reduce aborted, it wrote FAILED and exited 1
    const members = [member(0, { status: "FAILED", error: "Collective ops is aborted by: recvmsg:Connection reset by peer" }), member(1)];
    // Act
    const decision = decideWatchRound(observe({ members, exits: [exit(0, 1), exit(1, null)], membersAfterExit: members }), initialWatchState(T0), policy);
    // Assert
    assert.equal(decision.kind, "restart");
    assert.ok(decision.kind === "restart" && decision.member === "worker-1", JSON.stringify(decision));
  });

  it("ignores a zero exit and an exit of a member already DONE", () => {
    const decision = decideWatchRound(observe({ members: [member(0, { status: "DONE" }), member(1)], exits: [exit(0, 137), exit(1, 0)] }), initialWatchState(T0), policy);
    assert.equal(decision.kind, "continue");
  });

  it("restarts the whole member set as attempt 1 when a process is lost, fencing the ACTIVE members and retiring their epochs", () => {
    // Arrange
    const members = [member(0, { status: "DONE", epoch: 2 }), member(1, { epoch: 3 })];
    // Act
    const decision = decideWatchRound(observe({ members, exits: [exit(1, null)] }), initialWatchState(T0), policy);
    // Assert
    assert.equal(decision.kind, "restart");
    if (decision.kind !== "restart") return;
    assert.equal(decision.attempt, 1);
    assert.equal(decision.member, "worker-1");
    assert.match(decision.reason, /exited with code null before finishing/);
    assert.deepEqual(decision.fence.map((m) => `${m.role}-${m.index}@${m.epoch}`), ["worker-1@3"]);
    assert.deepEqual(decision.state, { attempt: 1, startedAt: T0, retired: { "worker-0": 2, "worker-1": 3 }, moved: {} });
  });

  it("restarts the set when a worker left after SIGTERM, and says why", () => {
    const decision = decideWatchRound(observe({ members: [member(0), member(1)], exits: [exit(1, WORKER_EXITS.preempted)] }), initialWatchState(T0), policy);
    assert.equal(decision.kind, "restart");
    assert.ok(decision.kind === "restart" && decision.member === "worker-1", JSON.stringify(decision));
    assert.match(decision.reason, /got SIGTERM .* left once the set's checkpoint was recorded/);
  });

  it("treats a lapsed lease (past the grace) as lost, and fails with the restarts used once none is left", () => {
    // Arrange: one restart already used
    const state: WatchState = { attempt: 1, startedAt: T0, retired: { "worker-0": 1, "worker-1": 1 }, moved: {} };
    const lapsed = member(1, { epoch: 2, leaseExpiresAt: T0 - 5_001 });
    // Act
    const withinGrace = decideWatchRound(observe({ members: [member(0, { epoch: 2 }), member(1, { epoch: 2, leaseExpiresAt: T0 - 4_000 })] }), state, policy);
    const gone = decideWatchRound(observe({ members: [member(0, { epoch: 2 }), lapsed] }), state, policy);
    // Assert
    assert.equal(withinGrace.kind, "continue");
    assert.equal(gone.kind, "fail");
    if (gone.kind === "fail") {
      assert.equal(gone.failure.kind, "lost");
      assert.deepEqual({ member: (gone.failure as any).member, restarts: (gone.failure as any).restarts }, { member: "worker-1", restarts: 1 });
      assert.match((gone.failure as any).reason, /lease expired/);
    }
  });

  it("looks past the FAILED records of a retired attempt", () => {
    const state: WatchState = { attempt: 1, startedAt: T0, retired: { "worker-0": 1, "worker-1": 1 }, moved: {} };
    const decision = decideWatchRound(observe({ members: [member(0, { status: "FAILED", error: "restarted (attempt 1)" }), member(1, { status: "FAILED", error: "killed" })] }), state, policy);
    assert.equal(decision.kind, "continue");
  });

  it("fails as a hang when a member's step and rows stay the same past progressTimeoutMs, and not when they move", () => {
    // Arrange
    const at = (now: number, step: number) => observe({ now, members: [member(0, { progress: { step, rowsConsumed: step * 3 }, leaseExpiresAt: now + 15_000 })] });
    // Act
    const moving = rounds([at(T0, 1), at(T0 + 8_000, 2), at(T0 + 16_000, 3), at(T0 + 24_000, 4)]);
    const stuck = rounds([at(T0, 1), at(T0 + 8_000, 1), at(T0 + 10_001, 1)]);
    // Assert
    assert.equal(moving.kind, "continue");
    assert.deepEqual(stuck, { kind: "fail", failure: { kind: "hang", member: "worker-0", idleMs: 10_001, step: 1, feedPosition: 3 } });
  });

  it("fails with a timeout past timeoutMs from the watch's start, naming each member's status", () => {
    const now = T0 + 60_001;
    const decision = decideWatchRound(observe({ now, members: [member(0, { leaseExpiresAt: now + 15_000 }), member(1, { leaseExpiresAt: now + 15_000 })] }), initialWatchState(T0), policy);
    assert.deepEqual(decision, { kind: "fail", failure: { kind: "timeout", timeoutMs: 60_000, members: "worker-0=ACTIVE, worker-1=ACTIVE" } });
  });

  it("fails with the completion's reason when the job can never complete", () => {
    const decision = decideWatchRound(observe({ completion: { kind: "failed", reason: "no model to publish" } }), initialWatchState(T0), policy);
    assert.deepEqual(decision, { kind: "fail", failure: { kind: "member-failed", reason: "no model to publish" } });
  });

  it("keeps a state that survives JSON, so a round on AWS decides as the in-process one", () => {
    // Arrange
    const at = (now: number) => observe({ now, members: [member(0, { progress: { step: 5, rowsConsumed: 15 }, leaseExpiresAt: now + 15_000 })] });
    const first = decideWatchRound(at(T0), initialWatchState(T0), policy);
    assert.equal(first.kind, "continue");
    if (first.kind !== "continue") return;
    const body = JSON.stringify({ v: 1, jobId: "fit-watch", round: 3, state: first.state, policy, workers: [{ member: { role: "worker", index: 0 }, id: "arn:aws:ecs:us-east-1:1:task/c/abc" }] });
    // Act
    const message = parseJobWatchEvent(body);
    // Assert
    assert.deepEqual(message.state, first.state);
    assert.equal(message.round, 3);
    assert.deepEqual(decideWatchRound(at(T0 + 10_001), message.state, message.policy), decideWatchRound(at(T0 + 10_001), first.state, policy));
  });

  it("starts a job's watch at round 0 under the stack's policy with the job's own settings over it", () => {
    // Act
    const message = firstWatchMessage({ spec: { jobId: "fit-watch" } as never, workers: { exits: [], stop: async () => undefined } }, { maxWorkerRestarts: 0, progressTimeoutMs: 5_000 }, T0);
    // Assert
    assert.deepEqual([message.round, message.state], [0, initialWatchState(T0)]);
    assert.deepEqual(message.policy, { ...JOB_WATCH.policy, maxWorkerRestarts: 0, progressTimeoutMs: 5_000 });
    assert.notDeepEqual(message.policy, JOB_WATCH.policy, "the overrides differ from the defaults, so the merge is seen");
  });

  it("refuses a watch message with a broken state, naming the field", () => {
    const body = JSON.stringify({ v: 1, jobId: "fit-watch", round: 0, state: { attempt: -1, startedAt: T0, retired: {}, moved: {} }, policy, workers: [] });
    assert.throws(() => parseJobWatchEvent(body), (e: unknown) => e instanceof EventShapeError && e.field === "state.attempt");
  });
});

describe("decideWatchRound with parameter servers", () => {
  const ps = (patch: Partial<MemberRecord> = {}): MemberRecord => member(0, { role: "ps", address: "10.0.1.0:2222", pid: 300, ...patch });
  const chief = (patch: Partial<MemberRecord> = {}): MemberRecord => member(0, { role: "chief", address: "10.0.2.0:2222", pid: 400, ...patch });
  const cluster = (patch: Partial<Record<"w0" | "w1" | "ps" | "chief", Partial<MemberRecord>>> = {}) => [chief(patch.chief), member(0, patch.w0), member(1, patch.w1), ps(patch.ps)];
  const lostExit = (role: "worker" | "ps" | "chief", index: number): WorkerExit => ({ member: { role, index }, code: null, signal: "SIGKILL", tail: "" });

  it("lets a lost worker rejoin while another worker lives: only it is fenced and retired, the attempt stays", () => {
    const decision = decideWatchRound(observe({ members: cluster(), exits: [exit(1, null)] }), initialWatchState(T0), policy);
    assert.equal(decision.kind, "rejoin");
    if (decision.kind !== "rejoin") return;
    assert.equal(decision.member.index, 1);
    assert.deepEqual(decision.fence.map((m) => `${m.role}-${m.index}`), ["worker-1"]);
    assert.deepEqual([decision.state.attempt, decision.state.rejoins, decision.state.retired], [0, 1, { "worker-1": 1 }]);
    // The next round sees worker-1 registered again at epoch 2, and its old exit is history.
    const next = decideWatchRound(observe({ members: cluster({ w1: { epoch: 2 } }) }), decision.state, policy);
    assert.equal(next.kind, "continue");
  });

  it("restarts the set when the ps or the chief is lost, or the last worker", () => {
    for (const [what, exits, members] of [
      ["ps", [lostExit("ps", 0)], cluster()],
      ["chief", [lostExit("chief", 0)], cluster()],
      ["last worker", [exit(1, null)], cluster({ w0: { status: "FAILED", epoch: 1 } })],
    ] as const) {
      const state = what === "last worker" ? { ...initialWatchState(T0), retired: {} } : initialWatchState(T0);
      const decision = decideWatchRound(observe({ members: [...members], exits: [...exits] }), state, policy);
      assert.ok(decision.kind === "restart" || (what === "last worker" && decision.kind === "fail"), `${what}: ${decision.kind}`);
    }
  });

  it("spends rejoins from maxWorkerRestarts: past it, a lost worker restarts the set or fails the job as without parameter servers", () => {
    const decision = decideWatchRound(observe({ members: cluster(), exits: [exit(1, null)] }), { ...initialWatchState(T0), rejoins: 1 }, policy);
    assert.equal(decision.kind, "restart");
  });

  it("carries the rejoin count through the job-watch message", () => {
    const first = firstWatchMessage({ spec: { jobId: "fit-watch" } as never, workers: { exits: [], stop: async () => undefined } }, {}, T0);
    const message = { ...first, state: { ...first.state, rejoins: 2 } };
    assert.equal(parseJobWatchEvent(JSON.stringify(message)).state.rejoins, 2);
  });
});
