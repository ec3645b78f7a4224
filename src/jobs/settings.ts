/**
 * The configuration every stage reads from its environment, checked once at start
 * (a Lambda cold start, or the local runtime's start) into a typed object.
 */
import { ConfigError } from "../errors.ts";
import { registryTableName } from "../registry/table.ts";

export const DEFAULT_BUCKET = "serverless-tf-artifacts";

export interface StageConfig {
  readonly tableName: string;
  readonly bucket: string;
  /** Where shard-feed requests (and their continuations) are queued. */
  readonly shardFeedQueueUrl: string | undefined;
  /** Where job-watch rounds are queued (AWS); unset, a started job has no watcher but its starter (runJob). */
  readonly jobWatchQueueUrl: string | undefined;
}

export function stageConfigFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): StageConfig {
  const bucket = env.SERVERLESS_TF_BUCKET ?? DEFAULT_BUCKET;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new ConfigError("SERVERLESS_TF_BUCKET", bucket, "a valid S3 bucket name");
  const shardFeedQueueUrl = env.SERVERLESS_TF_SHARD_FEED_QUEUE_URL;
  if (shardFeedQueueUrl !== undefined && !/^https?:\/\//.test(shardFeedQueueUrl)) throw new ConfigError("SERVERLESS_TF_SHARD_FEED_QUEUE_URL", shardFeedQueueUrl, "an SQS queue URL");
  const jobWatchQueueUrl = env.SERVERLESS_TF_JOB_WATCH_QUEUE_URL;
  if (jobWatchQueueUrl !== undefined && !/^https?:\/\//.test(jobWatchQueueUrl)) throw new ConfigError("SERVERLESS_TF_JOB_WATCH_QUEUE_URL", jobWatchQueueUrl, "an SQS queue URL");
  return { tableName: registryTableName(env), bucket, shardFeedQueueUrl, jobWatchQueueUrl };
}
