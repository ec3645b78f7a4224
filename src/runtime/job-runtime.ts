import type { FunctionDeps } from "../jobs/deps.ts";
import type { CoordinatorPorts, StartedJob } from "../jobs/started-job.ts";
import type { ShardFeedEvent } from "../protocol/shard-feed-request.ts";
import type { JobRequest } from "../protocol/start-request.ts";

export interface StartOptions {
  readonly hooks?: CoordinatorPorts["hooks"];
  /** How a shard reaches a shard-feed; default the runtime's own (the shard-feed queue). */
  readonly dispatchShard?: (event: ShardFeedEvent) => Promise<void>;
}

/**
 * Where jobs run: `fit`, `transform` and `Pipeline` start jobs through the coordinator of a
 * runtime and follow them through its registry.
 */
export interface JobRuntime {
  readonly deps: FunctionDeps;
  /** Starts a job through the coordinator. */
  startJob(request: JobRequest, options?: StartOptions): Promise<StartedJob>;
  /** Called when a job starts and when it ends (the local runtime polls its event sources only in between). */
  acquire(): void;
  release(): Promise<void>;
}
