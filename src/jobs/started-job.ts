/**
 * A job the coordinator has started, as its starter holds it: the spec, the shards, the
 * launched members. The coordinator's ports are the seams where AWS and the local runtime
 * differ (how members start, how a shard reaches a shard-feed, how a queue table is forwarded).
 */
import type { ShardFeedEvent, ShardRef } from "../protocol/shard-feed-request.ts";
import type { JobSpec } from "../protocol/spec.ts";
import type { LaunchedWorkers, WorkerExit, WorkerLauncher, WorkerProgress } from "../workers/launcher.ts";

export interface CoordinatorPorts {
  readonly launcher: WorkerLauncher;
  /** Hands a shard to a shard-feed (an SQS message on AWS and in the local runtime). */
  readonly dispatchShard: (event: ShardFeedEvent) => Promise<void>;
  /** Unbounded input: starts forwarding the source queue's rows to the job's feed (functions/stream-feed/). */
  readonly attachStream?: (spec: JobSpec, sourceQueueUrl: string) => Promise<StreamAttachment>;
  readonly hooks?: { onProgress?: (p: WorkerProgress) => void; onExit?: (e: WorkerExit) => void };
}

/** A running forwarder from an unbounded table's queue to a job's feed. */
export interface StreamAttachment {
  /** Stops forwarding; resolves once no forward is in flight. */
  detach(): Promise<void>;
}

export interface StartedJob {
  readonly spec: JobSpec;
  readonly shards: readonly ShardRef[];
  readonly workers: LaunchedWorkers;
  readonly stream?: StreamAttachment;
}

