/**
 * Lambda: feeds shards of a bounded table to the workers' queues (SQS-triggered). Each record
 * asks for one shard; a shard that runs out of time is queued again as a continuation; a failed
 * record comes back from SQS, and after the redrive count lands in the DLQ.
 */
import type { Context, SQSEvent } from "aws-lambda";
import { processSqsBatch } from "../../src/aws/sqs-batch.ts";
import { depsFromEnv, type FunctionDeps } from "../../src/jobs/deps.ts";
import { sendShardFeedRequest } from "../../src/jobs/shard-feed-queue.ts";
import { EventShapeError } from "../../src/protocol/errors.ts";
import { parseShardFeedEvent } from "../../src/protocol/shard-feed-request.ts";
import type { FunctionFactories, SqsHandler } from "../../src/runtime/functions.ts";
import { feedShard } from "./feed-shard.ts";

export function createShardFeedHandler(deps: FunctionDeps, log: (line: string) => void = (line) => console.error(line)): SqsHandler {
  return (event: SQSEvent, context?: Context) =>
    processSqsBatch(
      event,
      async (record) => {
        const request = parseShardFeedEvent(record.body);
        const result = await feedShard(deps, request, { remainingMs: () => context?.getRemainingTimeInMillis() ?? Number.POSITIVE_INFINITY });
        if (result.status === "continue") await sendShardFeedRequest(deps, request);
      },
      // A malformed request never becomes valid: let it go instead of cycling to the DLQ.
      { name: "shard-feed", isFinal: (e) => e instanceof EventShapeError, log, ...(context ? { context } : {}) },
    );
}

let fromEnv: SqsHandler | undefined;

export const handler: SqsHandler = (event, context) => (fromEnv ??= createShardFeedHandler(depsFromEnv()))(event, context);

// The local runtime builds this function through the same factory (src/runtime/functions.ts).
createShardFeedHandler satisfies FunctionFactories["shard-feed"]["createShardFeedHandler"];
