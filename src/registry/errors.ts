/**
 * Errors of the registry (docs/protocol.md, "Registry items"). Each one is the typed outcome of a
 * refused conditional write: it carries what the caller attempted and what the table holds now,
 * and its message says what to do next.
 */
import { ServerlessTfError } from "../errors.ts";
import type { Role } from "../protocol/names.ts";
import type { JobState, MemberStatus } from "./types.ts";

/**
 * `createJob` found an item for this job id already. (A deployed stack's coordinator answers it as a
 * `JobRejectedError` of type `JobConflictError`.)
 *
 * @example
 * try {
 *   await estimator.fit(table, { jobId: "fit-digits-2024-06-01" });
 * } catch (e) {
 *   if (e instanceof JobConflictError) console.error(`${e.jobId} exists (${e.existingState}): pick a new job id`);
 *   else throw e;
 * }
 */
export class JobConflictError extends ServerlessTfError {
  constructor(
    readonly jobId: string,
    readonly existingState: JobState | undefined,
  ) {
    super(
      `job ${jobId} already exists (state ${existingState ?? "unknown"}). ` +
        `Pick a new job id, or delete the old job first if it is finished and no longer needed.`,
    );
  }
}

/** The job has no item in the registry. */
export class JobNotFoundError extends ServerlessTfError {
  constructor(readonly jobId: string) {
    super(`job ${jobId} is not in the registry. Create it first (createJob), or check the job id and the table name (SERVERLESS_TF_TABLE).`);
  }
}

/** A job state transition was refused because the job is not in one of the expected states. */
export class JobStateError extends ServerlessTfError {
  constructor(
    readonly jobId: string,
    readonly expected: readonly JobState[],
    readonly actual: JobState,
    readonly attempted: JobState,
  ) {
    super(
      `job ${jobId} cannot move to ${attempted}: it is ${actual}, expected one of ${expected.join(", ")}. ` +
        `Another process changed it first; read the job again (getJob) and decide from its current state.`,
    );
  }
}

/** `register` found the slot held by a member whose lease is still live. */
export class MemberConflictError extends ServerlessTfError {
  constructor(
    readonly jobId: string,
    readonly role: Role,
    readonly index: number,
    readonly holderEpoch: number,
    readonly holderAddress: string,
    readonly leaseExpiresAt: number,
  ) {
    super(
      `${role}-${index} of job ${jobId} is held by ${holderAddress} (epoch ${holderEpoch}) whose lease runs until ` +
        `${new Date(leaseExpiresAt).toISOString()}. Stop the other process, or retry after the lease expires.`,
    );
  }
}

/** A heartbeat or status change carried an epoch that is no longer the slot's, or the member is no longer ACTIVE. */
export class FencedError extends ServerlessTfError {
  constructor(
    readonly jobId: string,
    readonly role: Role,
    readonly index: number,
    readonly epoch: number,
    readonly currentEpoch: number | undefined,
    readonly currentStatus: MemberStatus | undefined,
    /** Set when the epoch is still this process's but its lease lapsed at this time (epoch ms). */
    readonly leaseExpiredAt?: number,
  ) {
    super(
      leaseExpiredAt !== undefined
        ? `${role}-${index} of job ${jobId} was fenced: its lease (epoch ${epoch}) lapsed at ${new Date(leaseExpiredAt).toISOString()}, ` +
            `so the process was paused or cut off longer than the lease; it may have been replaced and must stop working for the job and exit.`
        : `${role}-${index} of job ${jobId} was fenced: this process holds epoch ${epoch} but the slot is ` +
            (currentEpoch === undefined ? "gone" : `at epoch ${currentEpoch}, status ${currentStatus}`) +
            (currentEpoch === epoch
              ? ". Its member left ACTIVE (the watch restarted the member set, or it already finished); this process must stop working for the job and exit."
              : ". Another registration took over; this process must stop working for the job and exit."),
    );
  }
}

/** `awaitBarrier` gave up before every expected member was ACTIVE with a live lease. */
export class BarrierTimeoutError extends ServerlessTfError {
  constructor(
    readonly jobId: string,
    readonly barrier: string,
    readonly missing: readonly string[],
    readonly timeoutMs: number,
  ) {
    super(
      `barrier ${barrier} of job ${jobId} was not released within ${timeoutMs} ms; missing: ${missing.join(", ")}. ` +
        `Check that those members were launched and can reach the registry, or raise the timeout.`,
    );
  }
}

/** `recordShardProgress` would move a shard's cursor (or sequence) backwards, or reopen a finished shard. */
export class ShardRewindError extends ServerlessTfError {
  constructor(
    readonly jobId: string,
    readonly shardId: string,
    readonly attempted: { readonly cursor: number; readonly seq: number; readonly done: boolean },
    readonly current: { readonly cursor: number; readonly seq: number; readonly done: boolean },
  ) {
    super(
      `shard ${shardId} of job ${jobId} is at cursor ${current.cursor} (seq ${current.seq}, done ${current.done}); ` +
        `refused to record cursor ${attempted.cursor} (seq ${attempted.seq}, done ${attempted.done}). ` +
        `A later invocation already went further: resume from the recorded progress (getShard) instead.`,
    );
  }
}

/** An item in the table does not follow docs/protocol.md (written by another version, or by hand). */
export class RegistryItemError extends ServerlessTfError {
  constructor(
    readonly key: string,
    readonly attribute: string,
    readonly expected: string,
    received: unknown,
  ) {
    super(`registry item ${key} has a bad attribute ${attribute}: expected ${expected}. Received: ${JSON.stringify(received)}. Fix or delete the item.`);
  }
}
