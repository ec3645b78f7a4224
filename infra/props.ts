/**
 * The construct's props, their defaults, and the checks that run on them before anything is
 * built: a wrong value fails at construction with a `ConfigError` that names the prop, quotes the
 * value and says what is allowed, not at deploy time with a CloudFormation message.
 */
import { join } from "node:path";
import { RemovalPolicy, Token } from "aws-cdk-lib";
import { ConfigError } from "../src/errors.ts";
import { MODEL_ID_PATTERN } from "../src/protocol/names.ts";
import { SERVING_MODES, WORKER_CAPACITIES, isWorkerCapacity, type ServingMode, type WorkerCapacity } from "../src/protocol/spec.ts";
import { DEFAULT_PREFIX, FUNCTIONS, INFERENCE_EVENT_SOURCE, type FunctionName } from "../src/resources/definitions.ts";
import { packageRoot } from "./code.ts";

export interface FunctionSizing {
  /** 128 to 10240 MB. */
  readonly memoryMb?: number;
  /** 1 to 900 s. The queues it consumes wait 6 times as long before a redelivery. */
  readonly timeoutSeconds?: number;
  /** At least 1: what the function may take from the account's concurrency. */
  readonly reservedConcurrency?: number;
}

export interface ServerlessTfProps {
  /**
   * Name prefix of the runtime queues and the registry table (`<prefix>-registry`): one deployment
   * per prefix per account and region. Matches `^[a-z0-9][a-z0-9-]{1,30}$`.
   *
   * @default "serverless-tf", the prefix the local runtime uses
   */
  readonly prefix?: string;
  /**
   * Buckets holding your input tables (`Table.fromS3`): the coordinator and shard-feed may list and
   * read them.
   *
   * @default none
   */
  readonly dataBucketNames?: readonly string[];
  /**
   * A worker's Fargate task size: a pair Fargate offers (2048 CPU units take 4096 to 16384 MiB).
   *
   * @default 2048 CPU units (2 vCPU) and 8192 MiB, or the size nearest 8192 MiB that workerCpu allows
   */
  readonly workerCpu?: number;
  readonly workerMemoryMiB?: number;
  /**
   * What a job's worker tasks run on unless the job says (`setWorkerCapacity`): `fargate`,
   * `fargate-spot` (up to 70 % cheaper; a reclaimed task is a lost member, which the job survives:
   * with parameter servers the chief goes on, otherwise the set saves a checkpoint on the task's SIGTERM and restarts from it),
   * or `gpu` (needs `gpuWorkers`).
   *
   * @default "fargate"
   */
  readonly workerCapacity?: WorkerCapacity;
  /**
   * GPU workers for jobs that ask for them (`setWorkerCapacity("gpu")`): an ECS capacity provider
   * of GPU instances that scales from zero, and a task definition running the GPU build of the
   * worker image (`python/Dockerfile`, target `gpu`: TensorFlow with CUDA, `python/requirements-gpu.lock`).
   *
   * @default none: a job asking for `gpu` is refused before anything of it is made
   */
  readonly gpuWorkers?: GpuWorkers;
  /**
   * Memory, timeout and reserved concurrency per function, over each one's own.
   *
   * @default FUNCTIONS in src/resources/definitions.ts
   */
  readonly sizing?: Partial<Record<FunctionName, FunctionSizing>>;
  /**
   * What `cdk destroy` does with the bucket and the table: RETAIN (with deletion protection on the
   * table) or DESTROY.
   *
   * @default RemovalPolicy.RETAIN, models and job history outlive the stack
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Models to serve from the start: each gets the queues `stf-serve-<id>-input`, `-output` and
   * `-dlq`, its input mapped to the function of its serving mode (a bare id: `script`, the
   * inference image; `signature`, the signature-inference zip function with the onnxruntime
   * layer). Models served later need no change here.
   *
   * @default none
   */
  readonly servedModels?: readonly ServedModel[];
  /**
   * Requests per inference invocation, 1 to 10000.
   *
   * @default 10
   */
  readonly inferenceBatchSize?: number;
  /**
   * Seconds Lambda may wait to fill a batch, 0 to 300; at least 1 when `inferenceBatchSize` is
   * above 10 (Lambda's rule for SQS event sources).
   *
   * @default 0
   */
  readonly inferenceMaxBatchingWindowSeconds?: number;
  /**
   * The folder holding `<name>/index.mjs` for every zip function, as `npm run build` writes it.
   *
   * @default dist/functions of the serverless-tf package
   */
  readonly functionsDir?: string;
  /**
   * A serverless-tf source tree: the worker image builds from its `python/Dockerfile`, the
   * inference image from its `functions/inference/Dockerfile` with the tree as context, and the
   * layers are its `dist/layers/<name>/` (built by `npm run build`).
   *
   * @default the serverless-tf package, a checkout or installed (it ships both Dockerfiles, the bundles and the layers)
   */
  readonly sourceDir?: string;
  /**
   * Whether the construct adds the outputs of `STACK_OUTPUTS` (src/resources/definitions.ts) to
   * its stack, under exactly those keys: what `StackRuntime.fromStack(stackName)` reads. False for
   * a second ServerlessTf in the same stack, whose keys would collide.
   *
   * @default true
   */
  readonly stackOutputs?: boolean;
}

export interface GpuWorkers {
  /**
   * An EC2 instance type with NVIDIA GPUs (families g and p).
   *
   * @default "g4dn.xlarge": one T4, 4 vCPU, 16 GiB
   */
  readonly instanceType?: string;
  /**
   * The most GPU instances at once. There are none while no GPU job runs.
   *
   * @default 2
   */
  readonly maxInstances?: number;
  /**
   * GPUs per worker task; the instance type must have at least as many.
   *
   * @default 1
   */
  readonly gpusPerWorker?: number;
  /**
   * A GPU worker task's CPU units and memory (MiB): within the instance's, less what the ECS agent keeps.
   *
   * @default 3072 CPU units and 12288 MiB, which fit a g4dn.xlarge
   */
  readonly cpu?: number;
  readonly memoryMiB?: number;
}

/**
 * A model the stack serves from the start: its id alone (script mode), or its id and serving mode.
 *
 * @example
 * new ServerlessTf(stack, "Tf", { servedModels: ["digits", { modelId: "churn", servingMode: "signature" }] });
 */
export type ServedModel = string | { readonly modelId: string; readonly servingMode: "script" | "signature" };

/** The props with every default filled in, each value checked. */
export interface ResolvedProps {
  readonly prefix: string;
  readonly dataBucketNames: readonly string[];
  readonly worker: { readonly cpu: number; readonly memoryMiB: number; readonly capacity: WorkerCapacity };
  readonly gpuWorkers: Required<GpuWorkers> | null;
  readonly sizing: Readonly<Record<FunctionName, Required<FunctionSizing>>>;
  readonly removalPolicy: RemovalPolicy;
  readonly servedModels: readonly { readonly modelId: string; readonly servingMode: ServingMode }[];
  readonly inference: { readonly batchSize: number; readonly maxBatchingWindowSeconds: number };
  readonly functionsDir: string;
  readonly sourceDir: string;
  readonly stackOutputs: boolean;
}

export const PREFIX_PATTERN = /^[a-z0-9][a-z0-9-]{1,30}$/;
/** S3 bucket naming rules: 3 to 63 characters, lower-case letters, digits, dots and hyphens, a letter or digit at each end. */
const BUCKET_NAME_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Fargate task sizes: memory (MiB) allowed for each CPU value (ECS developer guide, "Task size").
 * 0.25 to 1 vCPU take a fixed list; larger sizes a range in steps.
 */
export const FARGATE_TASK_SIZES: Readonly<Record<number, { readonly min: number; readonly max: number; readonly step: number }>> = {
  256: { min: 512, max: 2048, step: 512 },
  512: { min: 1024, max: 4096, step: 1024 },
  1024: { min: 2048, max: 8192, step: 1024 },
  2048: { min: 4096, max: 16384, step: 1024 },
  4096: { min: 8192, max: 30720, step: 1024 },
  8192: { min: 16384, max: 61440, step: 4096 },
  16384: { min: 32768, max: 122880, step: 8192 },
};

const DEFAULT_WORKER = { cpu: 2048, memoryMiB: 8192 } as const;
const DEFAULT_GPU_WORKERS: Required<GpuWorkers> = { instanceType: "g4dn.xlarge", maxInstances: 2, gpusPerWorker: 1, cpu: 3072, memoryMiB: 12288 };
/** EC2 instance types with NVIDIA GPUs: the accelerated-computing families g and p (g4dn, g5, g6, p4d, p5 ...). */
const GPU_INSTANCE_TYPE = /^(g[4-9][a-z]*|p[3-9][a-z]*)\.[0-9]*[a-z]+$/;
/** Lambda's limits (Lambda developer guide, "Lambda quotas"; SQS event source batching). */
const LIMITS = { memoryMb: [128, 10240], timeoutSeconds: [1, 900], batchSize: [1, 10000], batchingWindowSeconds: [0, 300], batchSizeWithoutWindow: 10 } as const;

/**
 * Fills in the defaults and checks every prop.
 *
 * @example
 * resolveProps({ servedModels: ["digits"] }).inference; // { batchSize: 10, maxBatchingWindowSeconds: 0 }
 * resolveProps({ servedModels: [{ modelId: "churn", servingMode: "signature" }] }).servedModels; // [{ modelId: "churn", servingMode: "signature" }]
 * resolveProps({ prefix: "Prod" }); // throws ConfigError: props.prefix must be a string matching ...
 */
export function resolveProps(props: ServerlessTfProps): ResolvedProps {
  const prefix = props.prefix ?? DEFAULT_PREFIX;
  if (typeof prefix !== "string" || !PREFIX_PATTERN.test(prefix)) throw new ConfigError("props.prefix", prefix, `a string matching ${PREFIX_PATTERN} (it names the table and the runtime queues)`);

  const dataBucketNames = list("props.dataBucketNames", props.dataBucketNames);
  dataBucketNames.forEach((name, i) => {
    if (typeof name !== "string" || (!Token.isUnresolved(name) && !BUCKET_NAME_PATTERN.test(name))) throw new ConfigError(`props.dataBucketNames[${i}]`, name, `an S3 bucket name (${BUCKET_NAME_PATTERN})`);
  });

  const cpu = props.workerCpu ?? DEFAULT_WORKER.cpu;
  const size = FARGATE_TASK_SIZES[cpu];
  if (!size) throw new ConfigError("props.workerCpu", cpu, `a Fargate CPU value: one of ${Object.keys(FARGATE_TASK_SIZES).join(", ")}`);
  const memoryMiB = props.workerMemoryMiB ?? Math.min(Math.max(DEFAULT_WORKER.memoryMiB, size.min), size.max);
  if (!Number.isInteger(memoryMiB) || memoryMiB < size.min || memoryMiB > size.max || (memoryMiB - size.min) % size.step !== 0) {
    throw new ConfigError("props.workerMemoryMiB", memoryMiB, `${size.min} to ${size.max} in steps of ${size.step} with workerCpu ${cpu} (the memory Fargate allows for that CPU)`);
  }

  const capacity = props.workerCapacity ?? "fargate";
  if (!isWorkerCapacity(capacity)) throw new ConfigError("props.workerCapacity", capacity, WORKER_CAPACITIES.join(" or "));
  const gpuWorkers = props.gpuWorkers === undefined ? null : resolveGpuWorkers(props.gpuWorkers);
  if (capacity === "gpu" && !gpuWorkers) throw new ConfigError("props.workerCapacity", capacity, '"fargate" or "fargate-spot" without gpuWorkers (the GPU instances "gpu" runs on)');

  const names = Object.keys(FUNCTIONS) as FunctionName[];
  for (const key of Object.keys(props.sizing ?? {})) {
    if (!names.includes(key as FunctionName)) throw new ConfigError("props.sizing", key, `keyed by function: ${names.join(", ")}`);
  }
  const sizing = Object.fromEntries(
    names.map((name) => {
      const given = props.sizing?.[name] ?? {};
      const at = (field: keyof FunctionSizing) => `props.sizing.${name}.${field}`;
      return [
        name,
        {
          memoryMb: integerIn(at("memoryMb"), given.memoryMb ?? FUNCTIONS[name].memoryMb, ...LIMITS.memoryMb),
          timeoutSeconds: integerIn(at("timeoutSeconds"), given.timeoutSeconds ?? FUNCTIONS[name].timeoutSeconds, ...LIMITS.timeoutSeconds),
          reservedConcurrency: integerIn(at("reservedConcurrency"), given.reservedConcurrency ?? FUNCTIONS[name].reservedConcurrency, 1, Number.MAX_SAFE_INTEGER),
        },
      ];
    }),
  ) as Record<FunctionName, Required<FunctionSizing>>;

  const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
  if (removalPolicy !== RemovalPolicy.RETAIN && removalPolicy !== RemovalPolicy.DESTROY) throw new ConfigError("props.removalPolicy", removalPolicy, "RemovalPolicy.RETAIN or RemovalPolicy.DESTROY");

  const servedModels = list("props.servedModels", props.servedModels).map((entry, i) => servedModel(`props.servedModels[${i}]`, entry));
  servedModels.forEach(({ modelId }, i) => {
    if (servedModels.findIndex((m) => m.modelId === modelId) !== i) throw new ConfigError(`props.servedModels[${i}]`, props.servedModels![i], "a model id not listed before (each model has one set of queues)");
  });

  const batchSize = integerIn("props.inferenceBatchSize", props.inferenceBatchSize ?? INFERENCE_EVENT_SOURCE.batchSize, ...LIMITS.batchSize);
  const maxBatchingWindowSeconds = integerIn("props.inferenceMaxBatchingWindowSeconds", props.inferenceMaxBatchingWindowSeconds ?? INFERENCE_EVENT_SOURCE.maxBatchingWindowSeconds, ...LIMITS.batchingWindowSeconds);
  if (batchSize > LIMITS.batchSizeWithoutWindow && maxBatchingWindowSeconds === 0) {
    throw new ConfigError(
      "props.inferenceMaxBatchingWindowSeconds",
      maxBatchingWindowSeconds,
      `1 to ${LIMITS.batchingWindowSeconds[1]} with inferenceBatchSize ${batchSize}: Lambda takes more than ${LIMITS.batchSizeWithoutWindow} SQS messages per batch only with a batching window`,
    );
  }

  const stackOutputs = props.stackOutputs ?? true;
  if (typeof stackOutputs !== "boolean") throw new ConfigError("props.stackOutputs", stackOutputs, "true or false");

  const root = props.functionsDir === undefined || props.sourceDir === undefined ? packageRoot() : "";
  return {
    prefix,
    dataBucketNames,
    worker: { cpu, memoryMiB, capacity },
    gpuWorkers,
    sizing,
    removalPolicy,
    servedModels,
    inference: { batchSize, maxBatchingWindowSeconds },
    functionsDir: props.functionsDir ?? join(root, "dist", "functions"),
    sourceDir: props.sourceDir ?? root,
    stackOutputs,
  };
}

function list<T>(setting: string, value: readonly T[] | undefined): readonly T[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError(setting, value, "an array");
  return value;
}

// Checked against the protocol's list, so a mode added there must be added to ServedModel too.
const SERVED_MODES: readonly Exclude<ServedModel, string>["servingMode"][] = SERVING_MODES;

function servedModel(setting: string, entry: ServedModel): { modelId: string; servingMode: ServingMode } {
  const modelId = (id: unknown, at: string): string => {
    if (typeof id !== "string" || !MODEL_ID_PATTERN.test(id)) throw new ConfigError(at, id, `a model id matching ${MODEL_ID_PATTERN}`);
    return id;
  };
  if (typeof entry === "string") return { modelId: modelId(entry, setting), servingMode: "script" };
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
    throw new ConfigError(setting, entry, `a model id matching ${MODEL_ID_PATTERN}, or { modelId, servingMode: ${SERVED_MODES.map((m) => `"${m}"`).join(" | ")} }`);
  }
  const unknown = Object.keys(entry).find((key) => key !== "modelId" && key !== "servingMode");
  if (unknown !== undefined) throw new ConfigError(setting, entry, `{ modelId, servingMode } with no other key (got ${JSON.stringify(unknown)})`);
  const mode: unknown = entry.servingMode;
  if (!(SERVED_MODES as readonly unknown[]).includes(mode)) throw new ConfigError(`${setting}.servingMode`, mode, SERVED_MODES.map((m) => `"${m}"`).join(" or "));
  return { modelId: modelId(entry.modelId, `${setting}.modelId`), servingMode: mode as ServingMode };
}

function resolveGpuWorkers(given: GpuWorkers): Required<GpuWorkers> {
  const instanceType = given.instanceType ?? DEFAULT_GPU_WORKERS.instanceType;
  if (typeof instanceType !== "string" || !GPU_INSTANCE_TYPE.test(instanceType)) throw new ConfigError("props.gpuWorkers.instanceType", instanceType, "an EC2 instance type with NVIDIA GPUs, such as g4dn.xlarge, g5.2xlarge or p4d.24xlarge");
  return {
    instanceType,
    maxInstances: integerIn("props.gpuWorkers.maxInstances", given.maxInstances ?? DEFAULT_GPU_WORKERS.maxInstances, 1, 1000),
    gpusPerWorker: integerIn("props.gpuWorkers.gpusPerWorker", given.gpusPerWorker ?? DEFAULT_GPU_WORKERS.gpusPerWorker, 1, 16),
    // ECS's limits for a task on EC2: 128 CPU units and 6 MiB at least (the instance bounds the rest).
    cpu: integerIn("props.gpuWorkers.cpu", given.cpu ?? DEFAULT_GPU_WORKERS.cpu, 128, 196_608),
    memoryMiB: integerIn("props.gpuWorkers.memoryMiB", given.memoryMiB ?? DEFAULT_GPU_WORKERS.memoryMiB, 1024, 4_000_000),
  };
}

function integerIn(setting: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new ConfigError(setting, value, max === Number.MAX_SAFE_INTEGER ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`);
  return value;
}
