/**
 * Waits for a job to end, and never forever: it fails as soon as the registry says FAILED, a
 * member reports FAILED, a worker process exits without finishing, a member's lease lapses
 * (no heartbeat), or no member makes progress (steps, rows consumed) for `progressTimeoutMs`,
 * each with the member, its reason and its traceback tail. A member that is lost (killed, its
 * lease lapsed) rather than failed by its own code is resumed up to `maxWorkerRestarts` times:
 * the whole member set restarts from the last checkpoint, since a collective op cannot go on
 * with a peer missing (MultiWorkerMirroredStrategy). Each round's decision is
 * `decideWatchRound` (src/jobs/watch-round.ts), the same one the job-watch stage makes on AWS.
 */
import { ServerlessTfError } from "../errors.ts";
import { memberKey } from "../protocol/names.ts";
import type { LaunchedWorkers, WorkerExit } from "../workers/launcher.ts";
import type { CheckpointRecord } from "../registry/types.ts";
import type { Deps } from "./deps.ts";

import { COMPLETE, DEFAULT_WATCH_POLICY, PENDING, decideWatchRound, initialWatchState, type Completion, type WatchDecision, type WatchFailure, type WatchObservation } from "./watch-round.ts";
import { type StartedJob } from "./started-job.ts";

/**
 * A job ended FAILED: its reason, and the member that failed with the last lines it wrote.
 *
 * @example
 * try {
 *   await estimator.fit(table);
 * } catch (e) {
 *   if (e instanceof JobFailedError) console.error(`job ${e.jobId} failed on ${e.member ?? "?"}: ${e.reason}\n${e.tail ?? ""}`);
 *   else throw e;
 * }
 */
export class JobFailedError extends ServerlessTfError {
  constructor(
    readonly jobId: string,
    readonly reason: string,
    readonly member?: string,
    readonly tail?: string,
  ) {
    super(`job ${jobId} failed${member ? ` on ${member}` : ""}: ${reason}${tail ? `\n--- last lines of ${member ?? "the worker"} ---\n${tail}` : ""}`);
  }
}

/**
 * A job did not finish within its `timeoutMs`.
 *
 * @example
 * try {
 *   await estimator.fit(table, { timeoutMs: 10 * 60_000 });
 * } catch (e) {
 *   if (e instanceof JobTimeoutError) console.error(`${e.message}: raise timeoutMs, or train on less`);
 *   else throw e;
 * }
 */
export class JobTimeoutError extends ServerlessTfError {}

/**
 * A member was lost and the restarts allowed (`maxWorkerRestarts`) are used up.
 *
 * @example
 * try {
 *   await estimator.setCheckpointEverySteps(100).setMaxWorkerRestarts(2).fit(table);
 * } catch (e) {
 *   if (e instanceof WorkerLostError) console.error(`${e.member} lost after ${e.restarts} restart(s); last checkpoint step ${e.lastCheckpoint?.step}`);
 *   else throw e;
 * }
 */
export class WorkerLostError extends JobFailedError {
  constructor(
    jobId: string,
    reason: string,
    member: string,
    readonly restarts: number,
    readonly lastCheckpoint: CheckpointRecord | undefined,
    tail?: string,
  ) {
    const at = lastCheckpoint ? `last checkpoint: step ${lastCheckpoint.step} at ${lastCheckpoint.uri}` : "no checkpoint was taken (set checkpointEverySteps to resume mid-training)";
    super(jobId, `${reason}; ${restarts} restart(s) of the member set used, none left (raise maxWorkerRestarts to allow more); ${at}`, member, tail);
  }
}

/**
 * No member moved (step, rows consumed) for `progressTimeoutMs`: the job hangs.
 *
 * @example
 * try {
 *   await estimator.setProgressTimeoutMs(120_000).fit(table);
 * } catch (e) {
 *   if (e instanceof JobHangError) console.error(`${e.member} idle ${e.idleMs} ms at step ${e.step}`);
 *   else throw e;
 * }
 */
export class JobHangError extends JobFailedError {
  constructor(
    jobId: string,
    member: string,
    readonly idleMs: number,
    readonly step: number,
    readonly feedPosition: number,
    readonly shards: string,
  ) {
    super(
      jobId,
      `no progress for ${idleMs} ms (progressTimeoutMs): stuck at step ${step}, feed position ${feedPosition} rows consumed; its shards: ${shards}. ` +
        "Check the user code for a blocking call, or raise progressTimeoutMs if a step really takes that long",
      member,
    );
  }
}

export interface WatchOptions {
  readonly timeoutMs?: number;
  readonly pollMs?: number;
  /** Extra grace after a lease's expiry before the member counts as gone. */
  readonly leaseGraceMs?: number;
  /** Restarts of the member set after a member is lost (0: fail at once). */
  readonly maxWorkerRestarts?: number;
  /** Fail when an active member's step and rows consumed stay the same this long (0: never). */
  readonly progressTimeoutMs?: number;
  /** Told about each restart of the member set. */
  readonly onRestart?: (restart: { readonly attempt: number; readonly member: string; readonly reason: string; readonly checkpoint?: CheckpointRecord }) => void;
  /** Checked every round after the failure checks; the watch ends when it returns true. */
  readonly done: () => Promise<boolean>;
}

/**
 * Reads what a round looks at: the job, its members, and (after an exit with an error from a
 * member not DONE) the members once more, the moment it may need to write FAILED with its reason.
 */
export async function observeJob(deps: Deps, jobId: string, exits: readonly WorkerExit[], completion: Completion = PENDING): Promise<WatchObservation> {
  const [job, members] = await Promise.all([deps.registry.getJob(jobId), deps.registry.members(jobId)]);
  const exitedEarly = exits.some((e) => e.code !== 0 && members.find((m) => memberKey(m) === memberKey(e.member))?.status !== "DONE");
  const membersAfterExit = exitedEarly ? await deps.registry.members(jobId) : undefined;
  return { now: Date.now(), job, members, exits, completion, ...(membersAfterExit ? { membersAfterExit } : {}) };
}

/** Carries out a restart decision: fences the attempt's active members, then restarts the member set. */
export async function restartMembers(deps: Deps, jobId: string, workers: LaunchedWorkers, decision: Extract<WatchDecision, { kind: "restart" }>): Promise<void> {
  for (const m of decision.fence) {
    await deps.registry
      .markMember({ jobId, role: m.role, index: m.index, epoch: m.epoch, status: "FAILED", error: `restarted (attempt ${decision.attempt}) after ${decision.member} was lost: ${decision.reason}` })
      .catch(() => undefined); // already moved on: nothing to fence
  }
  await workers.restart!(decision.attempt);
}

/** Carries out a rejoin decision: fences the lost worker, then starts it alone where the launcher can. */
export async function rejoinMember(deps: Deps, jobId: string, workers: LaunchedWorkers, decision: Extract<WatchDecision, { kind: "rejoin" }>, attempt: number): Promise<void> {
  for (const m of decision.fence) {
    await deps.registry
      .markMember({ jobId, role: m.role, index: m.index, epoch: m.epoch, status: "FAILED", error: `lost (${decision.reason}); the chief goes on with the other workers` })
      .catch(() => undefined); // already moved on: nothing to fence
  }
  await workers.restartMember?.({ role: decision.member.role, index: decision.member.index }, attempt);
}

/** The typed error for a failure decision, with what the registry adds (the last checkpoint, the shards). */
export async function failureError(deps: Deps, jobId: string, failure: WatchFailure): Promise<JobFailedError | JobTimeoutError> {
  switch (failure.kind) {
    case "job-failed":
      return new JobFailedError(jobId, failure.reason);
    case "member-failed":
      return new JobFailedError(jobId, failure.reason, failure.member, failure.tail);
    case "lost":
      return new WorkerLostError(jobId, failure.reason, failure.member, failure.restarts, await deps.registry.latestCheckpoint(jobId), failure.tail);
    case "hang": {
      const shards = (await deps.registry.shards(jobId))
        .map((s) => `${s.shardId} (cursor ${s.cursor}${s.done ? ", done" : ""}, ${s.rowsPerMember[failure.member] ?? 0} rows sent to ${failure.member})`)
        .join(", ");
      return new JobHangError(jobId, failure.member, failure.idleMs, failure.step, failure.feedPosition, shards || "none planned");
    }
    case "timeout":
      return new JobTimeoutError(`job ${jobId} did not finish within ${failure.timeoutMs} ms; its members: ${failure.members}`);
  }
}

export async function watchJob(deps: Deps, started: StartedJob, options: WatchOptions): Promise<void> {
  const { jobId } = started.spec;
  const pollMs = options.pollMs ?? 250;
  const policy = {
    timeoutMs: options.timeoutMs ?? DEFAULT_WATCH_POLICY.timeoutMs,
    leaseGraceMs: options.leaseGraceMs ?? DEFAULT_WATCH_POLICY.leaseGraceMs,
    // A launcher that cannot restart: a lost member fails the job.
    maxWorkerRestarts: started.workers.restart ? (options.maxWorkerRestarts ?? DEFAULT_WATCH_POLICY.maxWorkerRestarts) : 0,
    progressTimeoutMs: options.progressTimeoutMs ?? DEFAULT_WATCH_POLICY.progressTimeoutMs,
  };
  let state = initialWatchState(Date.now());
  let exitsSeen = 0; // exits of an earlier attempt's processes are history
  for (;;) {
    const observation = await observeJob(deps, jobId, started.workers.exits.slice(exitsSeen));
    let decision = decideWatchRound(observation, state, policy);
    // Completion is asked only once nothing failed, as before the round was a function.
    if (decision.kind === "continue") decision = decideWatchRound({ ...observation, completion: (await options.done()) ? COMPLETE : PENDING }, state, policy);
    switch (decision.kind) {
      case "succeed":
        return;
      case "fail":
        throw await failureError(deps, jobId, decision.failure);
      case "restart": {
        const checkpoint = await deps.registry.latestCheckpoint(jobId);
        await restartMembers(deps, jobId, started.workers, decision);
        exitsSeen = started.workers.exits.length;
        state = decision.state;
        options.onRestart?.({ attempt: decision.attempt, member: decision.member, reason: decision.reason, ...(checkpoint ? { checkpoint } : {}) });
        continue;
      }
      case "rejoin":
        await rejoinMember(deps, jobId, started.workers, decision, state.attempt);
        exitsSeen = started.workers.exits.length;
        state = decision.state;
        options.onRestart?.({ attempt: state.attempt, member: memberKey(decision.member), reason: `${decision.reason}; rejoining the running cluster` });
        continue;
      case "continue":
        state = decision.state;
        await new Promise((r) => setTimeout(r, pollMs));
    }
  }
}
