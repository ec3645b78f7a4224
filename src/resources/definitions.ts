/**
 * The runtime resources as data: names, queue attributes, function sizes and the registry
 * table's keys. The CDK stack (`infra/`) and the local runtime (`src/runtime/local-runtime.ts`) both
 * build from here, and `test/infra/stack.test.ts` checks the synthesized template
 * against {@link localProvisioningPlan}, so the emulator and AWS cannot drift apart.
 *
 * Plain data and pure functions only: the CDK app imports this module at synth time.
 */

import { ServerlessTfError } from "../errors.ts";
import { DEFAULT_REGISTRY_TABLE, REGISTRY_TABLE } from "../registry/table.ts";
import { SQS_MAX_MESSAGE_BYTES } from "../protocol/limits.ts";
import { EXPORT_MANIFEST } from "../protocol/model-metadata.ts";
import { servedQueueName } from "../protocol/names.ts";
import type { ServingMode } from "../protocol/spec.ts";

export { EXPORT_MANIFEST, REGISTRY_TABLE };

/** The artifacts bucket when none is configured. */
export const DEFAULT_BUCKET = "serverless-tf-artifacts";

/** Default name prefix of the runtime-wide resources (a deployment may choose another). */
export const DEFAULT_PREFIX = "serverless-tf";

/** The registry table of a deployment: `serverless-tf-registry` for the default prefix. */
export function registryTableNameFor(prefix: string): string {
  return `${prefix}-registry`;
}

/**
 * The path of one deployment's job roles (src/workers/job-role.ts), by region and registry table:
 * the stack lets its coordinator create, pass and delete only the roles under it, so a stack
 * cannot pass or delete another deployment's job roles in the same account (role names are
 * account-wide, but a policy's resource is the ARN, path included).
 */
export const jobRolePath = (region: string, tableName: string) => `/serverless-tf/jobs/${region}/${tableName}/`;

/** A job's worker role, `stf-<jobId>-worker`: at most 51 characters (IAM allows 64), unique as the job's queues are. */
export const jobRoleName = (jobId: string) => `stf-${jobId}-worker`;

/** Every per-job queue is `stf-<jobId>-<purpose>` (docs/protocol.md); IAM scopes to this prefix. */
export const JOB_QUEUE_PREFIX = "stf-";

/**
 * The Lambda functions, each running a bundle built from `functions/<bundle>/handler.ts` (its own
 * name unless its definition says otherwise).
 */
export type FunctionName = "coordinator" | "shard-feed" | "checkpoint" | "inference" | "signature-inference" | "job-watch" | "stream-feed";

/**
 * How a function ships: `zip`, its handler bundled with everything it imports (Node.js only);
 * `image`, a container image from `functions/<name>/Dockerfile` (Node.js and a Python engine).
 */
export type FunctionPackaging = "zip" | "image";

/** The instruction set a function runs on, as Lambda names it. */
export type FunctionArchitecture = "arm64" | "x86_64";

/**
 * Lambda layers: what a zip function needs that esbuild must not bundle. Each is assembled from
 * its source `layers/<name>/` into `dist/layers/<name>/` by scripts/build.ts, for the
 * architecture of the functions that have it.
 */
export type LayerName = "onnxruntime";

export interface FunctionDefinition {
  readonly name: FunctionName;
  readonly packaging: FunctionPackaging;
  /** The bundle it runs, `dist/functions/<bundle>/index.mjs`; default its own name. */
  readonly bundle?: FunctionName;
  readonly architecture: FunctionArchitecture;
  /** Zip functions only (an image carries everything itself); default none. */
  readonly layers?: readonly LayerName[];
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
  /** Reserved concurrency: caps what one stage can take from the account's pool. */
  readonly reservedConcurrency: number;
}

export const FUNCTIONS: Readonly<Record<FunctionName, FunctionDefinition>> = {
  // Starts a job: queues, registry item, shard plan, RunTask per member. No data passes through it.
  // Also consumes the fit-triggers queue: one job start per new training object.
  coordinator: { name: "coordinator", packaging: "zip", architecture: "arm64", memoryMb: 512, timeoutSeconds: 300, reservedConcurrency: 5 },
  // Hands its cursor to a continuation before Lambda's timeout stops it, so a
  // shard of any size fits in a short invocation; 150 s x 6 = the queue's 900 s visibility.
  "shard-feed": { name: "shard-feed", packaging: "zip", architecture: "arm64", memoryMb: 1024, timeoutSeconds: 150, reservedConcurrency: 20 },
  // Reads export.json and a few small objects, writes metadata and the latest pointer.
  checkpoint: { name: "checkpoint", packaging: "zip", architecture: "arm64", memoryMb: 256, timeoutSeconds: 10, reservedConcurrency: 5 },
  // Script-mode models: spawns a Python TensorFlow process (functions/inference/engine.ts), more
  // than a zip can hold; tensorflow-cpu wheels are x86-64.
  inference: { name: "inference", packaging: "image", architecture: "x86_64", memoryMb: 2048, timeoutSeconds: 60, reservedConcurrency: 10 },
  // Signature-mode models: the same handler runs `model.onnx` with ONNX Runtime in-process
  // (functions/inference/onnx-engine.ts), its native binding from the onnxruntime layer. x86-64
  // like the image, which copies the same layer files (functions/inference/Dockerfile), and like
  // the machines the hosted stack and the tests run on, so the layer they load is the one
  // deployed (layers/onnxruntime/README.md).
  "signature-inference": {
    name: "signature-inference",
    packaging: "zip",
    bundle: "inference",
    architecture: "x86_64",
    layers: ["onnxruntime"],
    memoryMb: 1024,
    timeoutSeconds: 60,
    reservedConcurrency: 10,
  },
  // One watch round per message: a few registry reads, one DescribeTasks; a restart waits for the
  // stopped tasks (Fargate: up to the container's 30 s stop timeout) before RunTask.
  "job-watch": { name: "job-watch", packaging: "zip", architecture: "arm64", memoryMb: 256, timeoutSeconds: 120, reservedConcurrency: 5 },
  // Forwards a streaming fit's source queue to its job's feed: one SQS batch in, one batch send out.
  "stream-feed": { name: "stream-feed", packaging: "zip", architecture: "arm64", memoryMb: 256, timeoutSeconds: 30, reservedConcurrency: 5 },
};

/**
 * An SQS mapping's maximum concurrency: as many batches as its function may run, since a poll
 * Lambda throttles still counts as a receive, and enough of them dead-letter a good message.
 * (Mappings take 2 to 1000; a reserved concurrency of 1 is still polled by two.)
 */
export function mappingMaxConcurrency(reservedConcurrency: number): number {
  return Math.max(2, reservedConcurrency);
}

/**
 * Lambda starts an SQS mapping with five concurrent batches and scales up from there, within the
 * mapping's maximum concurrency; the local runtime and the hosted stack stay at the start.
 */
export const INITIAL_SQS_BATCHES = 5;

/** The batches a local copy of `name`'s mapping runs at once (src/runtime/local-runtime.ts, src/hosted/hosted-stack.ts). */
export function startingBatches(reservedConcurrency: number, maxConcurrency = mappingMaxConcurrency(reservedConcurrency)): number {
  return Math.min(INITIAL_SQS_BATCHES, reservedConcurrency, maxConcurrency);
}

/**
 * The function that serves a model of each serving mode: its input queue maps there (the stack's
 * `servedModels`, and a model served later).
 */
export const SERVING_FUNCTION = { script: "inference", signature: "signature-inference" } as const satisfies Readonly<Record<ServingMode, FunctionName>>;

/** The bundle a function runs: `dist/functions/<bundleOf(name)>/index.mjs`. */
export function bundleOf(name: FunctionName): FunctionName {
  return FUNCTIONS[name].bundle ?? name;
}

/**
 * The one architecture of the functions that have `layer`: a layer holds native code for one
 * instruction set only, so functions of two architectures cannot share it.
 *
 * @example
 * layerArchitecture("onnxruntime"); // "x86_64"
 */
export function layerArchitecture(layer: LayerName): FunctionArchitecture {
  const users = Object.values(FUNCTIONS).filter((f) => f.layers?.includes(layer));
  const architectures = [...new Set(users.map((f) => f.architecture))];
  if (architectures.length !== 1) {
    throw new ServerlessTfError(
      `The ${layer} layer is used by ${users.map((f) => `${f.name} (${f.architecture})`).join(", ") || "no function"}: give its functions one architecture in FUNCTIONS (src/resources/definitions.ts), or split the layer per architecture.`,
    );
  }
  return architectures[0]!;
}

/**
 * The job-watch stage on AWS: each round re-queues its message with this delay (SQS allows up to
 * 900 s), so a job is looked at about twice a minute. The policy (src/jobs/watch-round.ts) is what
 * the coordinator puts in a job's first watch message.
 */
export const JOB_WATCH = {
  roundDelaySeconds: 30,
  /** Of the function's 120 s: the rest is for reading the registry and finishing the job. */
  outputBudgetMs: 60_000,
  /** Twice a job queue's visibility timeout: output still in flight is back on the queue by then. */
  outputSettleMs: 120_000,
  policy: { timeoutMs: 24 * 3600_000, leaseGraceMs: 30_000, maxWorkerRestarts: 2, progressTimeoutMs: 30 * 60_000 },
} as const;

/**
 * AWS: "set the source queue's visibility timeout to at least six times the timeout that you
 * configure on your function" (Lambda developer guide, SQS event source), so a message is not
 * handed to a second invocation while a throttled or retried one still holds it.
 */
export const VISIBILITY_PER_FUNCTION_TIMEOUT = 6;

/** 14 days, the SQS maximum: a dead letter outlives the job that produced it. */
export const DLQ_RETENTION_SECONDS = 14 * 24 * 3600;

/** Receives before a message moves to its DLQ. */
export const MAX_RECEIVE_COUNT = 5;

export type RuntimeQueueKey = "shardFeed" | "events" | "fitTriggers" | "jobWatch";

export interface RuntimeQueueDefinition {
  readonly key: RuntimeQueueKey;
  /** Appended to the prefix: `serverless-tf-shard-feed`. The DLQ adds `-dlq`. */
  readonly suffix: string;
  /** The function an event source mapping feeds from this queue. */
  readonly consumer: FunctionName;
  /** Records per invocation. */
  readonly batchSize: number;
  /** Whether the local runtime provisions it too. */
  readonly local: boolean;
}

export const RUNTIME_QUEUES: Readonly<Record<RuntimeQueueKey, RuntimeQueueDefinition>> = {
  // One shard per invocation: a shard-feed runs until it nears its timeout.
  shardFeed: { key: "shardFeed", suffix: "shard-feed", consumer: "shard-feed", batchSize: 1, local: true },
  // S3 notifications for `export.json` (the last object of an export).
  events: { key: "events", suffix: "events", consumer: "checkpoint", batchSize: 10, local: true },
  // S3 notifications for new objects under `training/`: each starts a fit (functions/coordinator/fit-trigger.ts).
  fitTriggers: { key: "fitTriggers", suffix: "fit-triggers", consumer: "coordinator", batchSize: 10, local: true },
  // One watch round of one job per message (functions/job-watch/watch-round.ts); AWS only: locally runJob watches in-process.
  jobWatch: { key: "jobWatch", suffix: "job-watch", consumer: "job-watch", batchSize: 1, local: false },
};

/** The queue attributes both sides create, as SQS `CreateQueue` attributes would name them. */
export interface QueuePlan {
  readonly name: string;
  readonly visibilityTimeoutSeconds: number;
  readonly dlq: { readonly name: string; readonly messageRetentionSeconds: number; readonly maxReceiveCount: number };
  readonly consumer: FunctionName;
  readonly batchSize: number;
  /** The queue's and its DLQ's `MaximumMessageSize`: SQS's limit. */
  readonly maxMessageSizeBytes: number;
}

export function runtimeQueueName(prefix: string, key: RuntimeQueueKey): string {
  return `${prefix}-${RUNTIME_QUEUES[key].suffix}`;
}

/** `consumerTimeoutSeconds`: the consuming function's timeout, when a deployment overrides FUNCTIONS'. */
export function queuePlan(prefix: string, key: RuntimeQueueKey, consumerTimeoutSeconds: number = FUNCTIONS[RUNTIME_QUEUES[key].consumer].timeoutSeconds): QueuePlan {
  const queue = RUNTIME_QUEUES[key];
  const name = runtimeQueueName(prefix, key);
  return {
    name,
    visibilityTimeoutSeconds: consumerTimeoutSeconds * VISIBILITY_PER_FUNCTION_TIMEOUT,
    dlq: { name: `${name}-dlq`, messageRetentionSeconds: DLQ_RETENTION_SECONDS, maxReceiveCount: MAX_RECEIVE_COUNT },
    consumer: queue.consumer,
    batchSize: queue.batchSize,
    maxMessageSizeBytes: SQS_MAX_MESSAGE_BYTES,
  };
}

/**
 * The queues of one served model (names: `servedQueueName`, src/protocol/names.ts): requests on
 * `input`, which an SQS event source maps to the function of the model's serving mode (`inference`
 * for script mode, `signature-inference` for signature mode) and which redrives to `dlq`;
 * answers on `output`; rows the function rejects, and requests that failed too often, on `dlq`.
 * The stack creates them for its `servedModels`; a model served later gets the same attributes.
 *
 * @example
 * servedQueuePlan("digits").input.name; // "stf-serve-digits-input"
 */
export interface ServedQueuePlan {
  readonly modelId: string;
  readonly input: { readonly name: string; readonly visibilityTimeoutSeconds: number; readonly maxReceiveCount: number };
  readonly output: { readonly name: string };
  readonly dlq: { readonly name: string; readonly messageRetentionSeconds: number };
  /** All three queues' `MaximumMessageSize`: SQS's limit. */
  readonly maxMessageSizeBytes: number;
}

/** `inferenceTimeoutSeconds`: the timeout of the function the input maps to, when a deployment overrides FUNCTIONS'. */
export function servedQueuePlan(modelId: string, inferenceTimeoutSeconds: number = FUNCTIONS.inference.timeoutSeconds): ServedQueuePlan {
  return {
    modelId,
    input: { name: servedQueueName.input(modelId), visibilityTimeoutSeconds: inferenceTimeoutSeconds * VISIBILITY_PER_FUNCTION_TIMEOUT, maxReceiveCount: MAX_RECEIVE_COUNT },
    output: { name: servedQueueName.output(modelId) },
    dlq: { name: servedQueueName.dlq(modelId), messageRetentionSeconds: DLQ_RETENTION_SECONDS },
    maxMessageSizeBytes: SQS_MAX_MESSAGE_BYTES,
  };
}

/**
 * How a served model's input queue feeds the inference function when a deployment says nothing
 * else (the stack's `inferenceBatchSize` and `inferenceMaxBatchingWindowSeconds`).
 */
export const INFERENCE_EVENT_SOURCE = { batchSize: 10, maxBatchingWindowSeconds: 0 } as const;

/** S3 key layout the bucket's lifecycle rules and IAM grants are written against (docs/protocol.md). */
export const BUCKET_PREFIXES = {
  jobs: "jobs/",
  models: "models/",
  /** Training data dropped here starts a fit, with the params of `_fit.json` beside it. */
  training: "training/",
} as const;

/**
 * Lifecycle: S3 rule filters take a key prefix and tags but no wildcard, so `jobs/*\/checkpoints/`
 * cannot be a prefix. Everything under `jobs/` is a job's working data (code, shards, spool,
 * checkpoints, output) and expires as a whole; objects tagged with their kind expire sooner.
 */
export const LIFECYCLE = {
  jobsExpireDays: 30,
  tagKey: "stf-kind",
  checkpointsExpireDays: 7,
  spoolExpireDays: 2,
  abortIncompleteUploadDays: 1,
  /** The artifacts bucket is versioned: an object's older versions stay this long. */
  noncurrentVersionsExpireDays: 30,
} as const;

export interface ProvisioningPlan {
  readonly tableName: string;
  readonly table: { readonly partitionKey: string; readonly sortKey: string; readonly timeToLiveAttribute: string; readonly billingMode: string };
  readonly bucket: string;
  readonly queues: readonly QueuePlan[];
  /** The bucket's S3 -> SQS notifications. S3 refuses overlapping filters: these have disjoint prefixes. */
  readonly notifications: readonly NotificationPlan[];
}

export interface NotificationPlan {
  readonly queue: RuntimeQueueKey;
  readonly events: readonly string[];
  readonly prefix: string;
  /** Omitted: every key under the prefix (S3 filters cannot exclude; the consumer ignores what is not its). */
  readonly suffix?: string;
}

/**
 * What the local runtime provisions on the emulator (and what the stack must match).
 *
 * @example
 * localProvisioningPlan({ tableName: "serverless-tf-registry", bucket: "serverless-tf-artifacts" }).queues[0]?.name; // "serverless-tf-shard-feed"
 */
export function localProvisioningPlan(names: { readonly tableName?: string; readonly bucket?: string; readonly prefix?: string; readonly trainingPrefix?: string } = {}): ProvisioningPlan {
  const prefix = names.prefix ?? DEFAULT_PREFIX;
  return {
    tableName: names.tableName ?? (names.prefix ? registryTableNameFor(names.prefix) : DEFAULT_REGISTRY_TABLE),
    table: {
      partitionKey: REGISTRY_TABLE.partitionKey.name,
      sortKey: REGISTRY_TABLE.sortKey.name,
      timeToLiveAttribute: REGISTRY_TABLE.timeToLiveAttribute,
      billingMode: REGISTRY_TABLE.billingMode,
    },
    bucket: names.bucket ?? DEFAULT_BUCKET,
    queues: (Object.keys(RUNTIME_QUEUES) as RuntimeQueueKey[]).filter((k) => RUNTIME_QUEUES[k].local).map((k) => queuePlan(prefix, k)),
    notifications: [
      // export.json, the last object of an export (functions/checkpoint/publish.ts), for the checkpoint stage.
      { queue: "events", events: ["s3:ObjectCreated:*"], prefix: BUCKET_PREFIXES.models, suffix: EXPORT_MANIFEST },
      // Any new object under training/; `_fit.json` and other `_`/`.` names are ignored by the trigger itself.
      { queue: "fitTriggers", events: ["s3:ObjectCreated:*"], prefix: names.trainingPrefix ?? BUCKET_PREFIXES.training },
    ],
  };
}

/** Environment variable names the stack sets on functions and the launcher reads. */
export const ENV = {
  table: "SERVERLESS_TF_TABLE",
  bucket: "SERVERLESS_TF_BUCKET",
  shardFeedQueueUrl: "SERVERLESS_TF_SHARD_FEED_QUEUE_URL",
  jobWatchQueueUrl: "SERVERLESS_TF_JOB_WATCH_QUEUE_URL",
  launcher: "SERVERLESS_TF_LAUNCHER",
  ecsCluster: "SERVERLESS_TF_ECS_CLUSTER",
  ecsTaskDefinition: "SERVERLESS_TF_ECS_TASK_DEFINITION",
  ecsContainer: "SERVERLESS_TF_ECS_CONTAINER",
  /** The GPU worker task definition and the capacity provider of the GPU instances; absent: the stack has no GPU workers. */
  ecsGpuTaskDefinition: "SERVERLESS_TF_ECS_GPU_TASK_DEFINITION",
  ecsGpuCapacityProvider: "SERVERLESS_TF_ECS_GPU_CAPACITY_PROVIDER",
  ecsSubnets: "SERVERLESS_TF_ECS_SUBNETS",
  ecsSecurityGroups: "SERVERLESS_TF_ECS_SECURITY_GROUPS",
  /** The managed policy that bounds every job role (src/workers/job-role.ts). */
  jobRoleBoundary: "SERVERLESS_TF_JOB_ROLE_BOUNDARY",
  /** What a job's worker tasks run on when it says nothing: fargate, fargate-spot or gpu. */
  workerCapacity: "SERVERLESS_TF_WORKER_CAPACITY",
  streamFeedFunction: "SERVERLESS_TF_STREAM_FEED_FUNCTION",
} as const;

/**
 * The deployed stack's CloudFormation output keys: what a runtime for a deployed stack reads
 * (`DescribeStacks`) to find the resources, with no CDK at run time.
 *
 * @example
 * const outputs = Object.fromEntries(stack.Outputs!.map((o) => [o.OutputKey, o.OutputValue]));
 * const bucket = outputs[STACK_OUTPUTS.bucketName];
 */
export const STACK_OUTPUTS = {
  bucketName: "BucketName",
  tableName: "TableName",
  shardFeedQueueUrl: "ShardFeedQueueUrl",
  jobWatchQueueUrl: "JobWatchQueueUrl",
  workerCluster: "WorkerCluster",
  workerTaskDefinition: "WorkerTaskDefinition",
  /** The event source settings the stack maps its served models with, for one mapped later. */
  inferenceBatchSize: "InferenceBatchSize",
  inferenceMaxBatchingWindowSeconds: "InferenceMaxBatchingWindowSeconds",
  /** `<Pascal>FunctionName` per function: the deployed function's name. */
  functionName: {
    coordinator: "CoordinatorFunctionName",
    "shard-feed": "ShardFeedFunctionName",
    checkpoint: "CheckpointFunctionName",
    inference: "InferenceFunctionName",
    "signature-inference": "SignatureInferenceFunctionName",
    "job-watch": "JobWatchFunctionName",
    "stream-feed": "StreamFeedFunctionName",
  } as const satisfies Readonly<Record<FunctionName, string>>,
} as const;

/** The worker container's name in the task definition (the launcher's override targets it). */
export const WORKER_CONTAINER = "worker";

/**
 * Seconds ECS leaves a worker between SIGTERM and SIGKILL (the container's stopTimeout; Fargate's
 * most, and Spot's two-minute notice): the time the set has to save the checkpoint SIGTERM asks
 * for (python/serverless_tf/worker/preemption.py). ECS's default is 30.
 */
export const WORKER_STOP_TIMEOUT_SECONDS = 120;
