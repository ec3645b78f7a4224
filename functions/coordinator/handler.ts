/**
 * Lambda: starts jobs, from two sources.
 * - Invoked with `{ "action": "start", "request": <JobRequest> }` (src/protocol/start-request.ts,
 *   scripts as s3:// URIs): returns the job id at once; the job runs on its workers. A request that
 *   can never succeed (bad shape, invalid settings, a job id already taken) is answered with
 *   `status: "rejected"` and the typed error, so an asynchronous invocation is not retried;
 *   anything else is thrown, so Lambda reports and retries it.
 * - From the fit-triggers queue (S3 notifications for `training/`): each new data object starts a
 *   fit (./fit-trigger.ts), with partial batch failures.
 * Either way a started job is put under watch: its first job-watch round is queued
 * (src/jobs/watch-queue.ts). A start's optional `watch` ({ timeoutMs, maxWorkerRestarts,
 * progressTimeoutMs }) and a trigger's estimator params override the stack's defaults for that job.
 */
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { ParamMap } from "../../src/api/params.ts";
import { Table } from "../../src/api/table.ts";
import { ESTIMATOR_PARAMS } from "../../src/api/tf-params.ts";
import { trainRequestOf, watchOverridesOf } from "../../src/api/train-request.ts";
import { SchemaError } from "../../src/codec/errors.ts";
import { ConfigError, ServerlessTfError } from "../../src/errors.ts";
import { depsFromEnv, type FunctionDeps } from "../../src/jobs/deps.ts";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { sendShardFeedRequest } from "../../src/jobs/shard-feed-queue.ts";
import { mapStream } from "../../src/jobs/stream-mapping.ts";
import { streamFeedFunctionFromEnv } from "../../src/jobs/settings.ts";
import type { CoordinatorPorts } from "../../src/jobs/started-job.ts";
import { watchStartedJob } from "../../src/jobs/watch-queue.ts";
import { EventShapeError } from "../../src/protocol/errors.ts";
import { memberKey } from "../../src/protocol/names.ts";
import { allMembers } from "../../src/protocol/spec.ts";
import { parseCoordinatorEvent } from "../../src/protocol/start-request.ts";
import { JobConflictError } from "../../src/registry/errors.ts";
import type { FunctionFactories, SqsHandler, StartFit } from "../../src/runtime/functions.ts";
import { launcherFromEnv } from "../../src/workers/from-env.ts";
import { createFitTriggerHandler } from "./fit-trigger.ts";
import { startJob } from "./start-job.ts";

export { createFitTriggerHandler, startJob };

export type CoordinatorResponse =
  | { readonly status: "started"; readonly jobId: string; readonly mode: "train" | "inference"; readonly members: readonly string[]; readonly shards: number }
  | { readonly status: "rejected"; readonly error: { readonly type: string; readonly message: string } };

const REJECTED: readonly (abstract new (...args: never[]) => ServerlessTfError)[] = [EventShapeError, ConfigError, SchemaError, JobConflictError];

/** Built once per container, from the environment the stack sets; the launcher on the first start that needs it. */
let fromEnv: { readonly deps: FunctionDeps; readonly triggers: SqsHandler } | undefined;
let ports: CoordinatorPorts | undefined;
let lambda: LambdaClient | undefined;

function portsOf(deps: FunctionDeps): CoordinatorPorts {
  return (ports ??= {
    launcher: launcherFromEnv(deps.config),
    dispatchShard: (e) => sendShardFeedRequest(deps, e),
    // Read at the first streaming start: a coordinator that never streams needs no stream-feed function.
    attachStream: (spec, sourceQueueUrl) => mapStream(deps, (lambda ??= new LambdaClient({})), streamFeedFunctionFromEnv())(spec, sourceQueueUrl),
  });
}

function containerOf(): NonNullable<typeof fromEnv> {
  if (!fromEnv) {
    const deps = depsFromEnv();
    // The same start as a direct invocation; the job id is the trigger's (bucket, key, ETag), so a
    // repeated event is refused by the registry (JobConflictError) and reported as a duplicate.
    const start: StartFit = async (fit) => {
      const params = new ParamMap(ESTIMATOR_PARAMS);
      params.loadJSON(fit.params, `the fit spec of ${fit.table.uri}`);
      const request = { ...trainRequestOf(params, Table.fromS3(fit.table.uri, [...fit.table.columns], fit.table.format), deps.config.bucket), jobId: fit.jobId };
      await watchStartedJob(deps, await startJob(deps, request, portsOf(deps)), watchOverridesOf(params));
    };
    fromEnv = { deps, triggers: createFitTriggerHandler(deps, start) };
  }
  return fromEnv;
}

/** An SQS event source delivers `Records` of `eventSource: "aws:sqs"`; a direct invocation never does. */
function isSqsEvent(event: unknown): event is SQSEvent {
  const records = (event as { Records?: unknown } | null)?.Records;
  return Array.isArray(records) && records.length > 0 && records.every((r) => (r as { eventSource?: unknown } | null)?.eventSource === "aws:sqs");
}

export function handler(event: SQSEvent): Promise<SQSBatchResponse>;
export function handler(event: unknown): Promise<CoordinatorResponse>;
export async function handler(event: unknown): Promise<CoordinatorResponse | SQSBatchResponse> {
  if (isSqsEvent(event)) return containerOf().triggers(event);
  try {
    const { deps } = containerOf();
    const { request, watch } = parseCoordinatorEvent(event, { bucket: deps.config.bucket });
    const started = await startJob(deps, request, portsOf(deps));
    await watchStartedJob(deps, started, watch);
    const { spec } = started;
    return { status: "started", jobId: spec.jobId, mode: spec.mode, members: allMembers(spec.cluster).map((m) => memberKey(m)), shards: started.shards.length };
  } catch (e) {
    if (REJECTED.some((type) => e instanceof type)) return { status: "rejected", error: { type: (e as Error).name, message: (e as Error).message } };
    throw e;
  }
}

// The local runtime starts jobs and runs fit triggers through the same cores (src/runtime/functions.ts).
startJob satisfies FunctionFactories["coordinator"]["startJob"];
createFitTriggerHandler satisfies FunctionFactories["coordinator"]["createFitTriggerHandler"];
