import type { FunctionDeps } from "../jobs/deps.ts";
import type { CoordinatorPorts, StartedJob } from "../jobs/started-job.ts";
import type { ModelMetadata } from "../protocol/model-metadata.ts";
import type { ShardFeedEvent } from "../protocol/shard-feed-request.ts";
import type { JobRequest } from "../protocol/start-request.ts";
import type { JobOutcome, RunOptions } from "./run-job.ts";
import type { StreamingJob } from "./streaming-job.ts";

export interface StartOptions {
  readonly hooks?: CoordinatorPorts["hooks"];
  /** How a shard reaches a shard-feed; default the runtime's own (the shard-feed queue). */
  readonly dispatchShard?: (event: ShardFeedEvent) => Promise<void>;
}

/**
 * Where jobs run: `fit`, `transform` and `Pipeline` hand their job to a runtime, the embedded
 * local default (src/runtime/local-runtime.ts) or a deployed stack (src/runtime/stack-runtime.ts).
 */
export interface JobRuntime {
  readonly deps: FunctionDeps;
  /** Runs a bounded job to its end: started through the coordinator, followed through the registry. */
  runJob(request: JobRequest, options?: RunOptions): Promise<JobOutcome>;
  /** Starts a streaming fit; resolves with its first published version. */
  startStreamingJob(request: JobRequest, options?: RunOptions): Promise<{ job: StreamingJob; first: ModelMetadata }>;
}

/**
 * A runtime whose jobs are started and watched from this process: the local runtime calls the
 * coordinator's core itself and watches the job in-process (`runJob` in ./run-job.ts), where on a
 * deployed stack the coordinator and job-watch functions do both.
 */
export interface InProcessRuntime {
  readonly deps: FunctionDeps;
  /** Starts a job through the coordinator. */
  startJob(request: JobRequest, options?: StartOptions): Promise<StartedJob>;
  /** Called when a job starts and when it ends (the local runtime polls its event sources only in between). */
  acquire(): void;
  release(): Promise<void>;
}
