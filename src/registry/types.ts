/** The records of the registry table, as docs/protocol.md lays them out. */
import type { Role } from "../protocol/names.ts";

export const JOB_STATES = ["CREATED", "RUNNING", "SUCCEEDED", "FAILED", "STOPPING", "STOPPED"] as const;
export type JobState = (typeof JOB_STATES)[number];
/** States a job never leaves. */
export const FINAL_JOB_STATES: readonly JobState[] = ["SUCCEEDED", "FAILED", "STOPPED"];

export const JOB_MODES = ["train", "inference"] as const;
export type JobMode = (typeof JOB_MODES)[number];

// The roles are the protocol's (protocol/names.ts); these two names stay only for callers not yet switched.
export { ROLES as MEMBER_ROLES } from "../protocol/names.ts";
export type MemberRole = Role;

export const MEMBER_STATUSES = ["ACTIVE", "DONE", "FAILED"] as const;
export type MemberStatus = (typeof MEMBER_STATUSES)[number];

/** The job spec as stored: a JSON object. Its shape (docs/protocol.md, "JobSpec") is checked by the coordinator, not here. */
export type JobSpecJson = { readonly [key: string]: unknown };

export interface JobRecord {
  readonly jobId: string;
  readonly state: JobState;
  readonly mode: JobMode;
  readonly spec: JobSpecJson;
  /** +1 on every change. */
  readonly rev: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly error?: string;
  readonly modelUri?: string;
}

export interface MemberProgress {
  readonly step: number;
  readonly rowsConsumed: number;
  /** The last epoch's progress values (epoch, loss, accuracy, ...), as the worker printed them. */
  readonly lastEpoch?: Readonly<Record<string, unknown>>;
}

export interface MemberRecord {
  readonly jobId: string;
  readonly role: Role;
  readonly index: number;
  /** `host:port` */
  readonly address: string;
  /** +1 on every registration of the slot; heartbeats and status changes must carry it. */
  readonly epoch: number;
  readonly leaseExpiresAt: number;
  readonly heartbeatAt: number;
  readonly status: MemberStatus;
  readonly pid: number;
  readonly progress?: MemberProgress;
  readonly error?: string;
}

/** `{"worker": ["host:port", ...], "ps": [...], "chief": [...]}`, each list ordered by index: what TF_CONFIG's `cluster` holds (empty roles dropped). */
export interface ClusterSpec {
  readonly worker: readonly string[];
  readonly ps: readonly string[];
  readonly chief?: readonly string[];
}

export interface BarrierRecord {
  readonly jobId: string;
  readonly name: string;
  readonly releasedAt: number;
  readonly clusterSpec: ClusterSpec;
  /** The epoch of every member the barrier released, keyed `worker-0`, `ps-0`, ... */
  readonly epochs: Readonly<Record<string, number>>;
}

export interface ShardProgress {
  /** Rows done. */
  readonly cursor: number;
  /** Next message sequence number. */
  readonly seq: number;
  readonly done: boolean;
  /** Keyed `worker-0`, ... */
  readonly rowsPerMember: Readonly<Record<string, number>>;
  readonly messagesPerMember: Readonly<Record<string, number>>;
}

export interface ShardRecord extends ShardProgress {
  readonly jobId: string;
  readonly shardId: string;
}

interface CheckpointFields {
  readonly step: number;
  /** The prefix holding every file of the checkpoint. */
  readonly uri: string;
  /** Rows consumed when the checkpoint was taken. */
  readonly feedPosition: number;
}

export interface CheckpointInput extends CheckpointFields {
  /** The member publishing it, with the epoch of its lease. */
  readonly writer: { readonly role: Role; readonly index: number; readonly epoch: number };
}

export interface CheckpointRecord extends CheckpointFields {
  readonly jobId: string;
  /** `worker-0`, ... */
  readonly member: string;
  readonly createdAt: number;
}
