/**
 * Waits for a job to end, and never forever: it fails as soon as the registry says FAILED, a
 * member reports FAILED, a worker process exits without finishing, a member's lease lapses
 * (no heartbeat), or no member makes progress (steps, rows consumed) for `progressTimeoutMs`,
 * each with the member, its reason and its traceback tail. A member that is lost (killed, its
 * lease lapsed) rather than failed by its own code is resumed up to `maxWorkerRestarts` times:
 * the whole member set restarts from the last checkpoint, since a collective op cannot go on
 * with a peer missing (MultiWorkerMirroredStrategy).
 */
import { ServerlessTfError } from "../errors.ts";
import type { CheckpointRecord, MemberRecord } from "../registry/types.ts";
import type { JobDeps } from "./deps.ts";
import type { StartedJob } from "../coordinator/coordinator.ts";

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

export class JobTimeoutError extends ServerlessTfError {}

/** A member was lost and the restarts allowed (`maxWorkerRestarts`) are used up. */
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

/** No member moved (step, rows consumed) for `progressTimeoutMs`: the job hangs. */
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

interface Failure {
  readonly member?: string;
  readonly reason: string;
  readonly tail?: string;
  /** Lost (killed, no heartbeat), not failed by its own code: worth a restart. */
  readonly lost: boolean;
}

const nameOf = (m: { role: string; index: number }) => `${m.role}-${m.index}`;

export async function watchJob(deps: JobDeps, started: StartedJob, options: WatchOptions): Promise<void> {
  const { jobId } = started.spec;
  const deadline = Date.now() + (options.timeoutMs ?? 30 * 60_000);
  const pollMs = options.pollMs ?? 250;
  let attempt = 0;
  let exitsSeen = 0; // exits of an earlier attempt's processes are history
  const retired = new Map<string, number>(); // member -> last epoch of an earlier attempt
  const moved = new Map<string, { mark: string; at: number }>();
  const current = (m: MemberRecord) => m.epoch > (retired.get(nameOf(m)) ?? 0);

  const findFailure = async (members: MemberRecord[]): Promise<Failure | undefined> => {
    const failed = members.find((m) => m.status === "FAILED" && current(m));
    if (failed) return { member: nameOf(failed), reason: failed.error ?? "no reason recorded", lost: false };
    for (const exit of started.workers.exits.slice(exitsSeen)) {
      const name = nameOf(exit.member);
      const record = members.find((m) => nameOf(m) === name);
      if (exit.code !== 0 && record?.status !== "DONE") {
        // Give the member a moment to have written its FAILED status with the reason.
        const again = (await deps.registry.members(jobId)).find((m) => nameOf(m) === name && current(m));
        if (again?.status === "FAILED") return { member: name, reason: again.error ?? "", tail: exit.tail, lost: false };
        return { member: name, reason: `the process exited with ${exit.signal ?? `code ${exit.code}`} before finishing`, tail: exit.tail, lost: true };
      }
    }
    const now = Date.now();
    const lapsed = members.find((m) => m.status === "ACTIVE" && current(m) && m.leaseExpiresAt + (options.leaseGraceMs ?? 5_000) < now);
    if (lapsed) {
      return { member: nameOf(lapsed), reason: `no heartbeat since ${new Date(lapsed.heartbeatAt).toISOString()} (lease expired); last progress ${JSON.stringify(lapsed.progress ?? {})}`, lost: true };
    }
    return undefined;
  };

  const checkProgress = async (members: MemberRecord[]): Promise<void> => {
    const limit = options.progressTimeoutMs ?? 0;
    if (limit <= 0) return;
    const now = Date.now();
    // From a member's first progress report on: before it, TensorFlow imports and the start barrier
    // hold it (the barrier has its own deadline, and the lease catches a dead process).
    for (const m of members.filter((r) => r.status === "ACTIVE" && current(r) && r.progress)) {
      const mark = `${m.epoch}:${m.progress?.step ?? -1}:${m.progress?.rowsConsumed ?? -1}`;
      const seen = moved.get(nameOf(m));
      if (!seen || seen.mark !== mark) moved.set(nameOf(m), { mark, at: now });
      else if (now - seen.at > limit) {
        const shards = (await deps.registry.shards(jobId))
          .map((s) => `${s.shardId} (cursor ${s.cursor}${s.done ? ", done" : ""}, ${s.rowsPerMember[nameOf(m)] ?? 0} rows sent to ${nameOf(m)})`)
          .join(", ");
        throw new JobHangError(jobId, nameOf(m), now - seen.at, m.progress?.step ?? 0, m.progress?.rowsConsumed ?? 0, shards || "none planned");
      }
    }
  };

  const restart = async (failure: Failure, members: MemberRecord[]): Promise<void> => {
    attempt += 1;
    const checkpoint = await deps.registry.latestCheckpoint(jobId);
    // Fence every member of this attempt: a survivor stuck in a collective op exits on its next
    // heartbeat, and the slots open for the new registrations (a live ACTIVE lease refuses them).
    for (const m of members) {
      retired.set(nameOf(m), m.epoch);
      if (m.status !== "ACTIVE") continue;
      await deps.registry
        .markMember({ jobId, role: m.role, index: m.index, epoch: m.epoch, status: "FAILED", error: `restarted (attempt ${attempt}) after ${failure.member} was lost: ${failure.reason}` })
        .catch(() => undefined); // already moved on: nothing to fence
    }
    await started.workers.restart!(attempt);
    exitsSeen = started.workers.exits.length;
    moved.clear();
    options.onRestart?.({ attempt, member: failure.member ?? "?", reason: failure.reason, ...(checkpoint ? { checkpoint } : {}) });
  };

  for (;;) {
    const job = await deps.registry.getJob(jobId);
    if (job?.state === "FAILED") throw new JobFailedError(jobId, job.error ?? "no reason recorded");
    const members = await deps.registry.members(jobId);
    const failure = await findFailure(members);
    if (failure) {
      if (!failure.lost) throw new JobFailedError(jobId, failure.reason, failure.member, failure.tail);
      if (attempt >= (options.maxWorkerRestarts ?? 0) || !started.workers.restart) {
        throw new WorkerLostError(jobId, failure.reason, failure.member ?? "?", attempt, await deps.registry.latestCheckpoint(jobId), failure.tail);
      }
      await restart(failure, members);
      continue;
    }
    await checkProgress(members);
    if (await options.done()) return;
    if (Date.now() > deadline) throw new JobTimeoutError(`job ${jobId} did not finish within ${options.timeoutMs ?? 30 * 60_000} ms; its members: ${members.map((m) => `${m.role}-${m.index}=${m.status}`).join(", ") || "none registered"}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
