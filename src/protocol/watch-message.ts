/** Parses a job-watch message (one watch round of one job) from an SQS message body. */
import { JOB_ID_PATTERN } from "./names.ts";
import { ROLES, type MemberRef } from "./names.ts";
import { EventShapeError } from "./errors.ts";
import { parseEventJson } from "./json.ts";

const TYPE = "job-watch message";

/** What each round hands the next: the job, the watch's state and policy, and the running members' handles. */
/** What a watch remembers between rounds: plain JSON, so it can travel in an SQS message. */
export interface WatchState {
  /** Restarts of the member set so far (attempt N meets at barrier `start-N`). */
  readonly attempt: number;
  /** When the watch began (ms since the epoch): the overall deadline counts from here. */
  readonly startedAt: number;
  /** Member (`worker-0`) -> the last epoch of an earlier attempt: records up to it are history. */
  readonly retired: Readonly<Record<string, number>>;
  /** Member -> its last progress mark (`epoch:step:rowsConsumed`) and when it first showed it. */
  readonly moved: Readonly<Record<string, { readonly mark: string; readonly at: number }>>;
  /** Parameter-server training: lost workers started again alone, the set kept running. */
  readonly rejoins?: number;
}

/** How long to wait and how often to resume; defaults as `watchJob` had them. */
export interface WatchPolicy {
  /** The whole job's deadline, from `startedAt`. */
  readonly timeoutMs: number;
  /** Extra grace after a lease's expiry before the member counts as gone. */
  readonly leaseGraceMs: number;
  /** Restarts of the member set after a member is lost (0: fail at once). */
  readonly maxWorkerRestarts: number;
  /** Fail when an active member's step and rows consumed stay the same this long (0: never). */
  readonly progressTimeoutMs: number;
}

/** A running member as a launcher can find it again from another process (an ECS task ARN): plain JSON. */
export interface WorkerHandle {
  readonly member: MemberRef;
  readonly id: string;
}

export interface JobWatchMessage {
  readonly v: 1;
  readonly jobId: string;
  /** 0 for the first round (and for messages queued before rounds were numbered); each round queues `round + 1`. A round is claimed once in the registry. */
  readonly round: number;
  /** When a finished inference job's saved output was first found short of what its workers announced (ms). */
  readonly outputShortSince?: number;
  readonly state: WatchState;
  readonly policy: WatchPolicy;
  readonly workers: readonly WorkerHandle[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;

function field<T>(value: unknown, name: string, expected: string, ok: (v: unknown) => boolean): T {
  if (!ok(value)) throw new EventShapeError(TYPE, name, value, expected);
  return value as T;
}

/**
 * @example
 * parseJobWatchEvent(record.body).state.attempt;
 */
export function parseJobWatchEvent(body: string): JobWatchMessage {
  const o = field<Obj>(parseEventJson(TYPE, body), "body", "a JSON object", isObj);
  field(o.v, "v", "1", (v) => v === 1);
  const state = field<Obj>(o.state, "state", "an object", isObj);
  const policy = field<Obj>(o.policy, "policy", "an object", isObj);
  const retired = field<Obj>(state.retired, "state.retired", "an object of member -> epoch", (v) => isObj(v) && Object.values(v).every(isCount));
  const moved = field<Obj>(state.moved, "state.moved", "an object of member -> { mark, at }", (v) => isObj(v) && Object.values(v).every((m) => isObj(m) && typeof m.mark === "string" && isCount(m.at)));
  const workers = field<unknown[]>(o.workers, "workers", "a list of { member: { role, index }, id }", (v) =>
    Array.isArray(v) && v.length <= 64 && v.every((w) => isObj(w) && typeof w.id === "string" && isObj(w.member) && (ROLES as readonly unknown[]).includes(w.member.role) && isCount(w.member.index)),
  );
  return {
    v: 1,
    jobId: field<string>(o.jobId, "jobId", `a job id matching ${JOB_ID_PATTERN}`, (v) => typeof v === "string" && JOB_ID_PATTERN.test(v)),
    round: o.round === undefined ? 0 : field<number>(o.round, "round", "a non-negative integer", isCount),
    ...(o.outputShortSince === undefined ? {} : { outputShortSince: field<number>(o.outputShortSince, "outputShortSince", "a time in ms since the epoch", isCount) }),
    state: {
      attempt: field<number>(state.attempt, "state.attempt", "a non-negative integer", isCount),
      startedAt: field<number>(state.startedAt, "state.startedAt", "a time in ms since the epoch", isCount),
      retired: retired as WatchState["retired"],
      moved: moved as WatchState["moved"],
      ...(state.rejoins === undefined ? {} : { rejoins: field<number>(state.rejoins, "state.rejoins", "a non-negative integer", isCount) }),
    },
    policy: {
      timeoutMs: field<number>(policy.timeoutMs, "policy.timeoutMs", "a non-negative integer", isCount),
      leaseGraceMs: field<number>(policy.leaseGraceMs, "policy.leaseGraceMs", "a non-negative integer", isCount),
      maxWorkerRestarts: field<number>(policy.maxWorkerRestarts, "policy.maxWorkerRestarts", "a non-negative integer", isCount),
      progressTimeoutMs: field<number>(policy.progressTimeoutMs, "policy.progressTimeoutMs", "a non-negative integer", isCount),
    },
    workers: workers as WorkerHandle[],
  };
}
