/**
 * Hands a shard to a shard-feed: one SQS message on the shard-feed queue, which triggers the
 * shard-feed function on AWS and the local runtime's event source here. The coordinator (on
 * Lambda and locally) and a shard-feed that hands its cursor to a continuation all use it.
 */
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { ConfigError } from "../errors.ts";

import { type ShardFeedEvent } from "../protocol/shard-feed-request.ts";
import { type FunctionDeps } from "./deps.ts";

/**
 * Queues `event` for a shard-feed.
 *
 * @throws ConfigError when `SERVERLESS_TF_SHARD_FEED_QUEUE_URL` was not configured.
 * @example
 * await sendShardFeedRequest(depsFromEnv(), { jobId: "fit-3f9a2c1b", shard });
 */
export async function sendShardFeedRequest(deps: Pick<FunctionDeps, "clients" | "config">, event: ShardFeedEvent): Promise<void> {
  const QueueUrl = deps.config.shardFeedQueueUrl;
  if (!QueueUrl) throw new ConfigError("SERVERLESS_TF_SHARD_FEED_QUEUE_URL", QueueUrl, "the URL of the shard-feed queue, which every shard (and continuation) is sent to");
  await deps.clients.sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: JSON.stringify(event) }));
}
