/**
 * One round of a job's watch as a pure function: what the registry says, the worker exits seen
 * since the last round and the watch's own state in, one decision out. The local watch loop
 * (src/jobs/watch.ts) calls it every `pollMs`; on AWS the job-watch stage
 * (src/jobs/job-watch.ts) calls it once per SQS message and carries the state in the next one,
 * so both make the same decisions from the same facts.
 */
import type { JobRecord, MemberRecord } from "../registry/types.ts";
import { memberKey } from "../protocol/names.ts";
import type { WorkerExit } from "../workers/launcher.ts";
import type { WatchPolicy, WatchState } from "../protocol/watch-message.ts";
import { WORKER_EXITS } from "../protocol/worker-exits.ts";


export type { WatchPolicy, WatchState };

export const DEFAULT_WATCH_POLICY: WatchPolicy = { timeoutMs: 30 * 60_000, leaseGraceMs: 5_000, maxWorkerRestarts: 0, progressTimeoutMs: 0 };

/** Whether the job's work is complete, as its mode defines it (see src/jobs/completion.ts). */
export type Completion = { readonly kind: "pending" } | { readonly kind: "complete" } | { readonly kind: "failed"; readonly reason: string };

export const PENDING: Completion = { kind: "pending" };
export const COMPLETE: Completion = { kind: "complete" };

/** What one round looks at. */
export interface WatchObservation {
  readonly now: number;
  readonly job: Pick<JobRecord, "state" | "error"> | undefined;
  readonly members: readonly MemberRecord[];
  /**
   * The members read again after a worker exited with an error while its record was not DONE:
   * the moment it may have needed to write FAILED with its reason. Absent when no such exit.
   */
  readonly membersAfterExit?: readonly MemberRecord[];
  /** Exits not seen by an earlier round (the current attempt's only). */
  readonly exits: readonly WorkerExit[];
  readonly completion: Completion;
}

/** Why a job failed, as data; `failureError` in src/jobs/watch.ts turns it into the typed error. */
export type WatchFailure =
  /** The registry holds the job FAILED (a shard-feed or an earlier watch failed it). */
  | { readonly kind: "job-failed"; readonly reason: string }
  /** A member failed by its own code, or the job's completion check failed. */
  | { readonly kind: "member-failed"; readonly reason: string; readonly member?: string; readonly tail?: string }
  /** A member was lost and no restart is left. */
  | { readonly kind: "lost"; readonly reason: string; readonly member: string; readonly restarts: number; readonly tail?: string }
  /** No progress for `progressTimeoutMs`. */
  | { readonly kind: "hang"; readonly member: string; readonly idleMs: number; readonly step: number; readonly feedPosition: number }
  /** Past `timeoutMs`. */
  | { readonly kind: "timeout"; readonly timeoutMs: number; readonly members: string };

export type WatchDecision =
  | { readonly kind: "continue"; readonly state: WatchState }
  /** Fence `fence` (mark FAILED at their epoch), then restart the member set as `attempt`. */
  | { readonly kind: "restart"; readonly attempt: number; readonly member: string; readonly reason: string; readonly fence: readonly MemberRecord[]; readonly state: WatchState }
  /**
   * Parameter-server training lost a worker while another lives: the chief reschedules its steps,
   * so the set goes on. Fence `fence`, then start that worker alone again where the launcher can
   * (same attempt, same address: it rejoins the running cluster); where it cannot, go on without it.
   */
  | { readonly kind: "rejoin"; readonly member: MemberRecord; readonly reason: string; readonly fence: readonly MemberRecord[]; readonly state: WatchState }
  | { readonly kind: "succeed" }
  | { readonly kind: "fail"; readonly failure: WatchFailure };


/**
 * @example
 * initialWatchState(Date.now()); // { attempt: 0, startedAt: ..., retired: {}, moved: {} }
 */
export function initialWatchState(now: number): WatchState {
  return { attempt: 0, startedAt: now, retired: {}, moved: {} };
}

interface Lost {
  readonly member: string;
  readonly reason: string;
  readonly tail?: string;
}

/**
 * Decides one round. Order: the job FAILED, a lost member (an exit before DONE without a
 * reported failure, or a lapsed lease: restarted while restarts are left), a member FAILED, a
 * hang, then completion, then the deadline.
 *
 * @example
 * const d = decideWatchRound({ now: Date.now(), job, members, exits: [], completion: PENDING }, state, DEFAULT_WATCH_POLICY);
 * if (d.kind === "continue") state = d.state;
 */
export function decideWatchRound(observation: WatchObservation, state: WatchState, policy: WatchPolicy): WatchDecision {
  const { now, job, members } = observation;
  const current = (m: MemberRecord) => m.epoch > (state.retired[memberKey(m)] ?? 0);
  if (job?.state === "FAILED") return { kind: "fail", failure: { kind: "job-failed", reason: job.error ?? "no reason recorded" } };

  // Losses are judged before reported failures: when a worker is killed, its peers' collective ops
  // abort ("Connection reset by peer") and they report FAILED themselves, often before the dead
  // worker's exit is seen. Their failure is a consequence; the loss is what a restart repairs.
  let lost: Lost | undefined;
  const reported = new Map<string, string | undefined>(); // member -> stderr tail of a reported failure
  for (const exit of observation.exits) {
    const name = memberKey(exit.member);
    const record = members.find((m) => memberKey(m) === name);
    if (exit.code === 0 || record?.status === "DONE") continue;
    const again = (observation.membersAfterExit ?? members).find((m) => memberKey(m) === name && current(m));
    if (again?.status === "FAILED") {
      reported.set(name, exit.tail);
      continue;
    }
    const reason = exit.code === WORKER_EXITS.preempted ? "it got SIGTERM (a Spot interruption or a stop) and left once the set's checkpoint was recorded" : `the process exited with ${exit.signal ?? `code ${exit.code}`} before finishing`;
    lost ??= { member: name, reason, tail: exit.tail };
  }
  if (!lost) {
    const lapsed = members.find((m) => m.status === "ACTIVE" && current(m) && m.leaseExpiresAt + policy.leaseGraceMs < now);
    if (lapsed) {
      lost = { member: memberKey(lapsed), reason: `no heartbeat since ${new Date(lapsed.heartbeatAt).toISOString()} (lease expired); last progress ${JSON.stringify(lapsed.progress ?? {})}` };
    }
  }
  const failed = (observation.membersAfterExit ?? members).find((m) => m.status === "FAILED" && current(m));
  if (failed && !lost) {
    const tail = reported.get(memberKey(failed));
    return { kind: "fail", failure: { kind: "member-failed", member: memberKey(failed), reason: failed.error ?? "no reason recorded", ...(tail !== undefined ? { tail } : {}) } };
  }
  if (lost) {
    const lostName = lost.member;
    const record = members.find((m) => memberKey(m) === lostName && current(m));
    const alive = (m: MemberRecord) => m.status === "ACTIVE" && current(m) && m.leaseExpiresAt + policy.leaseGraceMs >= now && !observation.exits.some((e) => memberKey(e.member) === memberKey(m));
    const parameterServers = members.some((m) => m.role === "chief");
    if (parameterServers && record?.role === "worker" && members.some((m) => m.role === "worker" && m !== record && alive(m)) && (state.rejoins ?? 0) < policy.maxWorkerRestarts) {
      return {
        kind: "rejoin",
        member: record,
        reason: lost.reason,
        fence: record.status === "ACTIVE" ? [record] : [],
        state: { ...state, rejoins: (state.rejoins ?? 0) + 1, retired: { ...state.retired, [lostName]: record.epoch } },
      };
    }
    if (state.attempt >= policy.maxWorkerRestarts) {
      return { kind: "fail", failure: { kind: "lost", member: lost.member, reason: lost.reason, restarts: state.attempt, ...(lost.tail !== undefined ? { tail: lost.tail } : {}) } };
    }
    const attempt = state.attempt + 1;
    // Every member of this attempt is retired: a survivor stuck in a collective op exits on its
    // next heartbeat, and the slots open for the new registrations (a live ACTIVE lease refuses them).
    const retired = { ...state.retired, ...Object.fromEntries(members.map((m) => [memberKey(m), m.epoch])) };
    return {
      kind: "restart",
      attempt,
      member: lost.member,
      reason: lost.reason,
      fence: members.filter((m) => m.status === "ACTIVE"),
      state: { ...state, attempt, retired, moved: {} },
    };
  }

  const moved: Record<string, { mark: string; at: number }> = { ...state.moved };
  if (policy.progressTimeoutMs > 0) {
    // From a member's first progress report on: before it, TensorFlow imports and the start barrier
    // hold it (the barrier has its own deadline, and the lease catches a dead process).
    for (const m of members.filter((r) => r.status === "ACTIVE" && current(r) && r.progress)) {
      const name = memberKey(m);
      const mark = `${m.epoch}:${m.progress?.step ?? -1}:${m.progress?.rowsConsumed ?? -1}`;
      const seen = moved[name];
      if (!seen || seen.mark !== mark) moved[name] = { mark, at: now };
      else if (now - seen.at > policy.progressTimeoutMs) {
        return { kind: "fail", failure: { kind: "hang", member: name, idleMs: now - seen.at, step: m.progress?.step ?? 0, feedPosition: m.progress?.rowsConsumed ?? 0 } };
      }
    }
  }

  if (observation.completion.kind === "complete") return { kind: "succeed" };
  if (observation.completion.kind === "failed") return { kind: "fail", failure: { kind: "member-failed", reason: observation.completion.reason } };
  if (now > state.startedAt + policy.timeoutMs) {
    return { kind: "fail", failure: { kind: "timeout", timeoutMs: policy.timeoutMs, members: members.map((m) => `${memberKey(m)}=${m.status}`).join(", ") || "none registered" } };
  }
  return { kind: "continue", state: { ...state, moved } };
}
