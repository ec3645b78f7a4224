/**
 * A streaming job's source queue on a deployed stack: an event source mapping from the queue to
 * the stack's stream-feed function (functions/stream-feed/handler.ts), made when the coordinator
 * starts the job and deleted when the job ends (job-watch) or is stopped (StackRuntime). The
 * registry says which job a queue feeds (src/registry/streams.ts); locally, the local runtime
 * forwards in-process instead.
 */
import { CreateEventSourceMappingCommand, DeleteEventSourceMappingCommand, ResourceNotFoundException, type LambdaClient } from "@aws-sdk/client-lambda";
import { ConfigError } from "../errors.ts";
import { STREAM_SOURCE_QUEUE_PREFIX } from "../protocol/names.ts";
import type { JobSpec } from "../protocol/spec.ts";
import type { Deps } from "./deps.ts";
import { queueArn } from "./queues.ts";
import type { StreamAttachment } from "./started-job.ts";

/** Records per stream-feed invocation: one SendMessageBatch of feed messages per batch. */
const STREAM_BATCH_SIZE = 10;

export function mapStream(deps: Deps, lambda: LambdaClient, streamFeedFunction: string): (spec: JobSpec, sourceQueueUrl: string) => Promise<StreamAttachment> {
  return async (spec, sourceQueueUrl) => {
    const arn = await queueArn(deps.clients, sourceQueueUrl);
    const queueName = arn.slice(arn.lastIndexOf(":") + 1);
    if (!queueName.startsWith(STREAM_SOURCE_QUEUE_PREFIX)) {
      throw new ConfigError("table", sourceQueueUrl, `a queue named ${STREAM_SOURCE_QUEUE_PREFIX}<name>: the only source queues the stack's stream-feed function may read`);
    }
    await deps.registry.claimStream(queueName, spec.jobId);
    const { UUID } = await lambda.send(
      new CreateEventSourceMappingCommand({ FunctionName: streamFeedFunction, EventSourceArn: arn, BatchSize: STREAM_BATCH_SIZE, FunctionResponseTypes: ["ReportBatchItemFailures"] }),
    );
    await deps.registry.recordStreamMapping(queueName, spec.jobId, UUID!);
    return { detach: () => unmapStream(deps, lambda, spec.jobId) };
  };
}

/** Deletes the job's mapping and frees its queue; nothing to do for a job that streams from none. */
export async function unmapStream(deps: Deps, lambda: LambdaClient, jobId: string): Promise<void> {
  const queueName = await deps.registry.streamQueueOf(jobId);
  if (!queueName) return;
  const stream = await deps.registry.streamOf(queueName);
  if (!stream || stream.jobId !== jobId || stream.released) return;
  if (stream.mappingId) {
    await lambda.send(new DeleteEventSourceMappingCommand({ UUID: stream.mappingId })).catch((e: unknown) => {
      if (!(e instanceof ResourceNotFoundException)) throw e;
    });
  }
  await deps.registry.releaseStream(queueName, jobId);
}
