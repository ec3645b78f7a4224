/**
 * The shard-feed stage over an SQS batch: each record asks for one shard. A shard that runs
 * out of time is queued again as a continuation; a failed record is reported back so SQS
 * retries it, and after the redrive count it lands in the DLQ.
 */
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { EventShapeError } from "../../src/protocol/errors.ts";
import { parseShardFeedEvent } from "../../src/protocol/shard-feed-request.ts";
import type { StageDeps } from "../../src/jobs/deps-from-env.ts";
import { sendShardFeedRequest } from "../../src/jobs/shard-feed-queue.ts";
import { feedShard, type FeedOptions } from "./feed-shard.ts";

export async function runShardFeedBatch(deps: StageDeps, event: SQSEvent, options: FeedOptions = {}, log: (line: string) => void = console.error): Promise<SQSBatchResponse> {
  const batchItemFailures: SQSBatchResponse["batchItemFailures"] = [];
  for (const record of event.Records) {
    try {
      const request = parseShardFeedEvent(record.body);
      const result = await feedShard(deps, request, options);
      if (result.status === "continue") {
        await sendShardFeedRequest(deps, request);
      }
    } catch (e) {
      log(`[shard-feed] message ${record.messageId}: ${(e as Error).message}`);
      // A malformed request never becomes valid: let it go instead of cycling to the DLQ.
      if (!(e instanceof EventShapeError)) batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
}
