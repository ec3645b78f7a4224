import type { WorkerLauncher } from "../workers/launcher.ts";
import type { StageDeps } from "../jobs/deps-from-env.ts";
import type { ShardFeedEvent } from "../../functions/shard-feed/feed-shard.ts";
import type { StreamAttachment } from "../../functions/coordinator/start-job.ts";
import type { JobSpec } from "../protocol/spec.ts";

/** Where jobs run: the clients and registry, how workers start, how shards reach a shard-feed. */
export interface JobRuntime {
  readonly deps: StageDeps;
  readonly launcher: WorkerLauncher;
  dispatchShard(event: ShardFeedEvent): Promise<void>;
  /** Forwards an unbounded table's queue to a streaming job's feed; a runtime without it cannot stream. */
  attachStream?(spec: JobSpec, sourceQueueUrl: string): Promise<StreamAttachment>;
  /** Called when a job starts and when it ends (the local runtime polls its event sources only in between). */
  acquire(): void;
  release(): Promise<void>;
}
