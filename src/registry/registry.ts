/**
 * The registry client: job state, member leases, barriers, shard progress and checkpoints in one
 * DynamoDB table (docs/protocol.md, "Registry items"). It replaces ZooKeeper: every write is
 * conditional, and a refused condition becomes a typed error built from the item that refused it.
 *
 * This class is the one entry point callers use; each record kind lives in its own module over
 * the item layer of items.ts (jobs, watch-claims, members, barriers, shards, checkpoints).
 */
import type { AwsClients } from "../aws/clients.ts";
import * as barriers from "./barriers.ts";
import type { AwaitBarrierInput, BarrierAttempt, BarrierInput } from "./barriers.ts";
import * as checkpoints from "./checkpoints.ts";
import { Items } from "./items.ts";
import * as jobs from "./jobs.ts";
import type { CreateJobInput, JobPatch } from "./jobs.ts";
import * as members from "./members.ts";
import type { HeartbeatInput, Lease, MarkMemberInput, RegisterInput } from "./members.ts";
import * as shards from "./shards.ts";
import type { BarrierRecord, CheckpointInput, CheckpointRecord, ClusterSpec, JobRecord, JobState, MemberRecord, ShardProgress, ShardRecord } from "./types.ts";
import * as watchClaims from "./watch-claims.ts";
import * as streams from "./streams.ts";

export { DEFAULT_RETENTION_SECONDS } from "./items.ts";
export type { AwaitBarrierInput, BarrierAttempt, BarrierInput } from "./barriers.ts";
export type { CreateJobInput, JobPatch } from "./jobs.ts";
export type { HeartbeatInput, Lease, MarkMemberInput, RegisterInput } from "./members.ts";

/**
 * The registry of one table. Construct one per process; it holds no state besides the client.
 *
 * @example
 * const registry = new Registry(createAwsClients(), registryTableName());
 * await registry.createJob({ jobId: "fit-3f9a2c1b", mode: "train", spec });
 * const { epoch } = await registry.register({ jobId: "fit-3f9a2c1b", role: "worker", index: 0, address: "10.0.0.5:2222", pid: process.pid, leaseMs: 10_000 });
 * const clusterSpec = await registry.awaitBarrier({ jobId: "fit-3f9a2c1b", name: "start", expected: { worker: 2, ps: 0 }, timeoutMs: 60_000 });
 */
export class Registry {
  private readonly items: Items;

  constructor(
    clients: AwsClients,
    readonly tableName: string,
    /** Epoch milliseconds. Injectable so lease expiry is testable without sleeping. */
    now: () => number = Date.now,
  ) {
    this.items = new Items(clients, tableName, now);
  }

  /** Writes a new job in state CREATED, rev 1. Throws {@link JobConflictError} when the id is taken. */
  createJob(input: CreateJobInput): Promise<JobRecord> {
    return jobs.createJob(this.items, input);
  }

  /**
   * Every job in the registry, newest first (a Scan: for a person's listing, not a job's path).
   *
   * @example
   * for (const job of await registry.listJobs()) console.log(job.jobId, job.state);
   */
  listJobs(): Promise<JobRecord[]> {
    return jobs.listJobs(this.items);
  }

  /** The job, read consistently; undefined when it is not in the registry. */
  getJob(jobId: string): Promise<JobRecord | undefined> {
    return jobs.getJob(this.items, jobId);
  }

  /**
   * Moves the job to `to` if its state is one of `from`, adding 1 to `rev`.
   * Throws {@link JobStateError} when the state is another one, {@link JobNotFoundError} when there is no job.
   *
   * @example
   * await registry.transitionJob(jobId, ["RUNNING"], "SUCCEEDED", { modelUri: "s3://b/models/m/versions/3/metadata.json" });
   */
  transitionJob(jobId: string, from: readonly JobState[], to: JobState, patch: JobPatch = {}): Promise<JobRecord> {
    return jobs.transitionJob(this.items, jobId, from, to, patch);
  }

  /**
   * Claims round `round` of a job's watch for the message `token` (its SQS message id): the job
   * item's `watchRound` moves from `round` to `round + 1`. The same message again (a redelivery
   * after a failed round, or an SDK retry whose response was lost) is granted again; any other
   * message for that round (a duplicated send) is refused, so a job has one chain of rounds.
   * Returns false when refused; throws {@link JobNotFoundError} when the job is gone.
   */
  /** The streaming job a source queue feeds (src/registry/streams.ts). */
  streamOf(queueName: string): Promise<streams.StreamRecord | undefined> {
    return streams.streamOf(this.items, queueName);
  }

  claimStream(queueName: string, jobId: string): Promise<void> {
    return streams.claimStream(this.items, queueName, jobId);
  }

  recordStreamMapping(queueName: string, jobId: string, mappingId: string): Promise<void> {
    return streams.recordStreamMapping(this.items, queueName, jobId, mappingId);
  }

  releaseStream(queueName: string, jobId: string): Promise<void> {
    return streams.releaseStream(this.items, queueName, jobId);
  }

  streamQueueOf(jobId: string): Promise<string | undefined> {
    return streams.streamQueueOf(this.items, jobId);
  }

  claimWatchRound(jobId: string, round: number, token: string): Promise<boolean> {
    return watchClaims.claimWatchRound(this.items, jobId, round, token);
  }

  /**
   * Claims restart `attempt` of a job's member set: the job item's `watchAttempt` moves up to
   * `attempt`. False when it is already there (an earlier try of the same watch round restarted
   * the set): the caller must not fence the members that attempt registered.
   */
  claimWatchAttempt(jobId: string, attempt: number): Promise<boolean> {
    return watchClaims.claimWatchAttempt(this.items, jobId, attempt);
  }

  /**
   * Takes the slot `role-index` for `leaseMs`: allowed when the slot is empty, its lease has expired,
   * its member is no longer ACTIVE, or it is this same process (`address` and `pid` match, so an SDK retry
   * of a registration that already succeeded is not refused). The epoch becomes the previous one + 1.
   * Throws {@link MemberConflictError} when a live member holds the slot.
   */
  register(input: RegisterInput): Promise<Lease> {
    return members.register(this.items, input);
  }

  /** Extends the lease of the member holding `epoch`. Throws {@link FencedError} when the epoch moved on or the member is not ACTIVE. */
  heartbeat(input: HeartbeatInput): Promise<{ readonly leaseExpiresAt: number }> {
    return members.heartbeat(this.items, input);
  }

  /**
   * Records that the member holding `epoch` finished (DONE) or failed (FAILED). Repeating the same
   * status is accepted; anything else after the member left ACTIVE, or with an old epoch, throws {@link FencedError}.
   */
  markMember(input: MarkMemberInput): Promise<void> {
    return members.markMember(this.items, input);
  }

  /** Every member item of the job, ordered by role then index. */
  members(jobId: string): Promise<MemberRecord[]> {
    return members.members(this.items, jobId);
  }

  /** The released barrier, or undefined while it is not released. */
  getBarrier(jobId: string, name: string): Promise<BarrierRecord | undefined> {
    return barriers.getBarrier(this.items, jobId, name);
  }

  /**
   * One attempt to release the barrier: when every expected slot holds an ACTIVE member with a live
   * lease, puts `barrier#<name>` with `attribute_not_exists(sk)`. Exactly one racing caller wins the put;
   * the others read the winner's item, so all see the same cluster spec.
   */
  releaseBarrier(input: BarrierInput): Promise<BarrierAttempt> {
    return barriers.releaseBarrier(this.items, input, (jobId) => this.members(jobId));
  }

  /**
   * Waits until the barrier is released (by this caller or another) and returns its cluster spec.
   * Throws {@link BarrierTimeoutError} naming the missing members after `timeoutMs` of wall time
   * (measured with the real clock, not the injected one, so a frozen test clock cannot hang it).
   */
  awaitBarrier(input: AwaitBarrierInput): Promise<ClusterSpec> {
    // Through the method, not the module: a subclass that overrides releaseBarrier sees every attempt.
    return barriers.awaitBarrier(input, (attempt) => this.releaseBarrier(attempt));
  }

  /**
   * Records how far a shard feed got. Refused with {@link ShardRewindError} when it would move the
   * cursor or sequence backwards or reopen a done shard, so a retried continuation cannot rewind.
   * Writing the same progress again is accepted.
   */
  recordShardProgress(jobId: string, shardId: string, progress: ShardProgress): Promise<ShardRecord> {
    return shards.recordShardProgress(this.items, jobId, shardId, progress);
  }

  getShard(jobId: string, shardId: string): Promise<ShardRecord | undefined> {
    return shards.getShard(this.items, jobId, shardId);
  }

  /** Every shard of the job, ordered by shard id. */
  shards(jobId: string): Promise<ShardRecord[]> {
    return shards.shards(this.items, jobId);
  }

  /**
   * Publishes a checkpoint whose files are all uploaded under `uri`, as `checkpoint#<step, 12
   * digits>`, in one transaction with a check that the writer still holds its lease (epoch,
   * ACTIVE, not lapsed): a fenced worker cannot publish over its replacement. The same step again
   * replaces it. Throws {@link FencedError} when the writer lost its lease.
   */
  recordCheckpoint(jobId: string, checkpoint: CheckpointInput): Promise<CheckpointRecord> {
    return checkpoints.recordCheckpoint(this.items, jobId, checkpoint);
  }

  /** The checkpoint with the highest step, or undefined when there is none. */
  latestCheckpoint(jobId: string): Promise<CheckpointRecord | undefined> {
    return checkpoints.latestCheckpoint(this.items, jobId);
  }

  /** Deletes every item of the job (job, members, barriers, shards, checkpoints). Returns how many. */
  deleteJob(jobId: string): Promise<number> {
    return jobs.deleteJob(this.items, jobId);
  }
}
