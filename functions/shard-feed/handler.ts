/** Lambda: feeds shards of a bounded table to the workers' queues (SQS-triggered). */
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { runShardFeedBatch } from "../../src/feed/shard-feed-stage.ts";
import { stageDeps } from "../../src/stage/deps.ts";

export const handler = (event: SQSEvent, context?: Context): Promise<SQSBatchResponse> =>
  runShardFeedBatch(stageDeps(), event, { remainingMs: () => context?.getRemainingTimeInMillis() ?? Number.POSITIVE_INFINITY });
