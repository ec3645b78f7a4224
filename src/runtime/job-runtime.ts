import type { FunctionDeps } from "../jobs/deps.ts";
import type { CoordinatorPorts, StartedJob } from "../jobs/started-job.ts";
import type { ModelMetadata } from "../protocol/model-metadata.ts";
import type { ShardFeedEvent } from "../protocol/shard-feed-request.ts";
import type { JobRequest } from "../protocol/start-request.ts";
import type { OutputRow } from "../jobs/output-rows.ts";
import type { WatchOptions } from "../jobs/watch.ts";
import type { WorkerProgress } from "../workers/launcher.ts";

/** How a job is run to its end, on any runtime. */
export interface RunOptions extends Pick<WatchOptions, "maxWorkerRestarts" | "progressTimeoutMs" | "onRestart"> {
  readonly onProgress?: (progress: WorkerProgress) => void;
  readonly timeoutMs?: number;
  /** A job id to use instead of a fresh one (a deterministic id makes a repeated start a JobConflictError). */
  readonly jobId?: string;
  /** Called once the job is registered and its workers launched. */
  readonly onStarted?: (jobId: string) => void;
}

export type JobOutcome =
  | { readonly mode: "train"; readonly jobId: string; readonly model: ModelMetadata | null }
  | { readonly mode: "inference"; readonly jobId: string; readonly rows: ReadonlyMap<bigint, OutputRow> };

/** A running streaming fit. */
export interface StreamingJob {
  readonly jobId: string;
  /** Settles when the job has ended (after {@link stop}), rejecting if it failed. */
  readonly done: Promise<void>;
  /** Stops forwarding, lets the worker train on what was forwarded and export once more, then ends the job. */
  stop(): Promise<void>;
}


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
