/** Lambda: feeds shards of a bounded table to the workers' queues (SQS-triggered). */
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { runShardFeedBatch } from "./batch.ts";
import { stageDeps } from "../../src/jobs/deps-from-env.ts";

export const handler = (event: SQSEvent, context?: Context): Promise<SQSBatchResponse> =>
  runShardFeedBatch(stageDeps(), event, { remainingMs: () => context?.getRemainingTimeInMillis() ?? Number.POSITIVE_INFINITY });
