/**
 * Lambda: starts jobs, from two sources.
 * - Invoked with `{ "action": "start", "request": <JobRequest> }` (docs/protocol.md JobSpec fields,
 *   scripts as s3:// URIs): returns the job id at once; the job runs on its workers. A request that
 *   can never succeed (bad shape, invalid settings, a job id already taken) is answered with
 *   `status: "rejected"` and the typed error, so an asynchronous invocation is not retried;
 *   anything else is thrown, so Lambda reports and retries it.
 * - Either way, a started job is put under watch: its first job-watch round is queued
 *   (src/jobs/job-watch-stage.ts), which ends, restarts or finishes it. A start event's optional
 *   `watch` ({ timeoutMs, maxWorkerRestarts, progressTimeoutMs }) and a trigger's estimator params
 *   override the stack's defaults for that job.
 * - From the fit-triggers queue (S3 notifications for `training/`): each new data object starts a
 *   fit through src/triggers/fit-trigger.ts, the code the local runtime runs for the same queue,
 *   with partial batch failures.
 */
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { trainRequestOf, watchOverridesOf } from "../../src/api/train-request.ts";
import { SchemaError } from "../../src/codec/errors.ts";
import { startJob, type CoordinatorPorts } from "./start-job.ts";
import { ServerlessTfError, ConfigError } from "../../src/errors.ts";
import { parseCoordinatorEvent } from "../../src/protocol/start-request.ts";
import { EventShapeError } from "../../src/protocol/errors.ts";
import { allMembers } from "../../src/protocol/spec.ts";
import { sendShardFeedRequest } from "../../src/jobs/shard-feed-queue.ts";
import { watchStartedJob } from "../job-watch/watch-round.ts";
import { launcherFromEnv } from "../../src/workers/from-env.ts";
import { JobConflictError } from "../../src/registry/errors.ts";
import { stageDeps, type StageDeps } from "../../src/jobs/deps-from-env.ts";
import { runFitTriggerBatch, type StartFit } from "./fit-trigger.ts";

export type CoordinatorResponse =
  | { readonly status: "started"; readonly jobId: string; readonly mode: "train" | "inference"; readonly members: readonly string[]; readonly shards: number }
  | { readonly status: "rejected"; readonly error: { readonly type: string; readonly message: string } };

const REJECTED: readonly (abstract new (...args: never[]) => ServerlessTfError)[] = [EventShapeError, ConfigError, SchemaError, JobConflictError];

let ports: CoordinatorPorts | undefined;
const portsOf = (deps: StageDeps): CoordinatorPorts => (ports ??= { launcher: launcherFromEnv(deps.config), dispatchShard: (e) => sendShardFeedRequest(deps, e) });

/** An SQS event source delivers `Records` of `eventSource: "aws:sqs"`; a direct invocation never does. */
function isSqsEvent(event: unknown): event is SQSEvent {
  const records = (event as { Records?: unknown } | null)?.Records;
  return Array.isArray(records) && records.length > 0 && records.every((r) => (r as { eventSource?: unknown } | null)?.eventSource === "aws:sqs");
}

export function handler(event: SQSEvent): Promise<SQSBatchResponse>;
export function handler(event: unknown): Promise<CoordinatorResponse>;
export async function handler(event: unknown): Promise<CoordinatorResponse | SQSBatchResponse> {
  if (isSqsEvent(event)) {
    const deps = stageDeps();
    // The same start as a direct invocation; the job id is the trigger's (bucket, key, ETag), so a
    // repeated event is refused by the registry (JobConflictError) and reported as a duplicate.
    const start: StartFit = async (params, table, jobId) =>
      void (await watchStartedJob(deps, await startJob(deps, { ...trainRequestOf(params, table, deps.config.bucket), jobId }, portsOf(deps)), watchOverridesOf(params)));
    return runFitTriggerBatch(deps, event, start);
  }
  try {
    const deps = stageDeps();
    const { request, watch } = parseCoordinatorEvent(event, { bucket: deps.config.bucket });
    const started = await startJob(deps, request, portsOf(deps));
    await watchStartedJob(deps, started, watch);
    const { spec } = started;
    return { status: "started", jobId: spec.jobId, mode: spec.mode, members: allMembers(spec.cluster).map((m) => `${m.role}-${m.index}`), shards: started.shards.length };
  } catch (e) {
    if (REJECTED.some((type) => e instanceof type)) return { status: "rejected", error: { type: (e as Error).name, message: (e as Error).message } };
    throw e;
  }
}
