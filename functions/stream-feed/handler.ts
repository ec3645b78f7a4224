/**
 * Lambda: forwards a streaming fit's source queue to its job's feed (./stream-feed.ts). The
 * coordinator maps the queue to this function when the job starts (src/jobs/stream-mapping.ts);
 * the queue a batch comes from names the job, through the registry (src/registry/streams.ts). A
 * batch for a queue that feeds no running job fails whole, so its rows wait in the source queue
 * for the next job instead of being lost.
 */
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { ServerlessTfError } from "../../src/errors.ts";
import { depsFromEnv, type FunctionDeps } from "../../src/jobs/deps.ts";
import { parseJobSpec } from "../../src/protocol/spec.ts";
import type { SqsHandler } from "../../src/runtime/functions.ts";
import { createStreamFeedHandler } from "./stream-feed.ts";

export { createStreamFeedHandler };

/** The queue feeds no job that is running: its rows stay where they are. */
export class NoStreamingJobError extends ServerlessTfError {}

let deps: FunctionDeps | undefined;
const byJob = new Map<string, SqsHandler>();

async function forwarderFor(queueArn: string): Promise<SqsHandler> {
  deps ??= depsFromEnv();
  const queueName = queueArn.slice(queueArn.lastIndexOf(":") + 1);
  const stream = await deps.registry.streamOf(queueName);
  const job = stream && !stream.released ? await deps.registry.getJob(stream.jobId) : undefined;
  if (!stream || !job || job.state !== "RUNNING") {
    throw new NoStreamingJobError(`${queueName} feeds no running streaming job${stream ? ` (its last, ${stream.jobId}, is ${job?.state ?? "gone"})` : ""}: the batch stays on the queue`);
  }
  let forward = byJob.get(job.jobId);
  if (!forward) byJob.set(job.jobId, (forward = createStreamFeedHandler(deps, parseJobSpec(job.spec))));
  return forward;
}

export const handler: SqsHandler = async (event: SQSEvent): Promise<SQSBatchResponse> => {
  const bySource = new Map<string, SQSEvent["Records"]>();
  for (const r of event.Records) bySource.set(r.eventSourceARN, [...(bySource.get(r.eventSourceARN) ?? []), r]);
  const failures = await Promise.all([...bySource].map(async ([arn, Records]) => (await (await forwarderFor(arn))({ Records })).batchItemFailures));
  return { batchItemFailures: failures.flat() };
};
