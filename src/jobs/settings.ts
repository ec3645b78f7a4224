/**
 * The configuration every function reads from its environment, checked once at its start (a
 * Lambda cold start) into a typed object. The local runtime builds the same object directly.
 */
import { ConfigError } from "../errors.ts";
import { registryTableName } from "../registry/table.ts";
import { DEFAULT_BUCKET, ENV } from "../resources/definitions.ts";


export interface FunctionConfig {
  readonly tableName: string;
  readonly bucket: string;
  /** Where shard-feed requests (and their continuations) are queued. */
  readonly shardFeedQueueUrl: string | undefined;
  /** Where job-watch rounds are queued (AWS); unset, a started job has no watcher but its starter (runJob). */
  readonly jobWatchQueueUrl: string | undefined;
}

export function functionConfigFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): FunctionConfig {
  const bucket = env.SERVERLESS_TF_BUCKET ?? DEFAULT_BUCKET;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new ConfigError("SERVERLESS_TF_BUCKET", bucket, "a valid S3 bucket name");
  const shardFeedQueueUrl = env.SERVERLESS_TF_SHARD_FEED_QUEUE_URL;
  if (shardFeedQueueUrl !== undefined && !/^https?:\/\//.test(shardFeedQueueUrl)) throw new ConfigError("SERVERLESS_TF_SHARD_FEED_QUEUE_URL", shardFeedQueueUrl, "an SQS queue URL");
  const jobWatchQueueUrl = env.SERVERLESS_TF_JOB_WATCH_QUEUE_URL;
  if (jobWatchQueueUrl !== undefined && !/^https?:\/\//.test(jobWatchQueueUrl)) throw new ConfigError("SERVERLESS_TF_JOB_WATCH_QUEUE_URL", jobWatchQueueUrl, "an SQS queue URL");
  return { tableName: registryTableName(env), bucket, shardFeedQueueUrl, jobWatchQueueUrl };
}

/**
 * `SERVERLESS_TF_STREAM_FEED_FUNCTION`: the stack's stream-feed function, which the coordinator
 * maps a streaming fit's source queue to (src/jobs/stream-mapping.ts).
 */
export function streamFeedFunctionFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const name = env.SERVERLESS_TF_STREAM_FEED_FUNCTION;
  if (!name) throw new ConfigError("SERVERLESS_TF_STREAM_FEED_FUNCTION", name ?? null, "the stream-feed function's name or ARN (the stack sets it on the coordinator)");
  return name;
}

/**
 * The `SERVERLESS_TF_*` settings a function may read with no value set, each with what it does and
 * its default; every other setting a function reads, its template sets (test/integration/hosted/).
 */
export const OPTIONAL_SETTINGS: Readonly<Record<string, string>> = {
  SERVERLESS_TF_FAULT_RATE: "injected AWS faults for the reliability tests (src/aws/faults.ts); unset: none",
  SERVERLESS_TF_FAULT_SEED: "the seed of those faults; unset: none",
  SERVERLESS_TF_ROOT: "where the shipped python/ is (src/workers/paths.ts); unset: found from the code's own location (the inference image sets it)",
  SERVERLESS_TF_PYTHON: "the Python that runs workers and the engine; unset: the checkout's .venv (the inference image sets it)",
  SERVERLESS_TF_MODEL_RECHECK_MS: "how often a served model re-checks latest.json; unset: 5000 ms",
  [ENV.ecsGpuTaskDefinition]: "the GPU worker task definition (the construct's gpuWorkers); unset: the stack has no GPU workers, and a job asking for gpu is refused",
};
