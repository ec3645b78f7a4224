/**
 * The job spec: what the coordinator writes into the registry and every worker reads.
 * Its JSON shape is fixed by docs/protocol.md; both languages parse it once, at the edge
 * ({@link parseJobSpec} here, `serverless_tf` on the Python side).
 */
import type { Column } from "../codec/schema.ts";
import { Fields, isInt, isObject, isS3Uri } from "./fields.ts";
import { JOB_ID_PATTERN, MODEL_ID_PATTERN, type MemberKey, type MemberRef } from "./names.ts";

export type JobMode = "train" | "inference";

export type RemainderPolicy = { readonly policy: "drop" } | { readonly policy: "pad" } | { readonly policy: "flush"; readonly afterMs: number };

export interface PythonConfig {
  /** s3:// URIs of the user's scripts; the first holds the entry function. */
  readonly scripts: readonly string[];
  readonly entry: string;
  readonly hyperParams: Readonly<Record<string, unknown>>;
  readonly env: Readonly<Record<string, string>>;
  /** Environment variables resolved from Secrets Manager inside the worker: name -> secret ARN (never the value). */
  readonly secrets?: Readonly<Record<string, string>>;
}

/**
 * How a served model runs: `script`, its Python inference entry in the inference image's engine
 * (functions/inference/engine.ts); `signature`, its exported serving signature as ONNX, in the
 * Node function itself (functions/inference/onnx-engine.ts).
 */
export type ServingMode = "script" | "signature";
export const SERVING_MODES: readonly ServingMode[] = ["script", "signature"];

/** How a trained model is served: its inference entry and columns, kept in its metadata. */
export interface InferenceConfig {
  readonly python: PythonConfig;
  readonly input: { readonly columns: readonly Column[] };
  readonly output: { readonly columns: readonly Column[] };
  readonly batchSize: number;
  /** Absent: `script`. */
  readonly servingMode?: ServingMode;
}

export interface ClusterShape {
  readonly worker: number;
  readonly ps: number;
}

export interface JobQueues {
  readonly feed: Readonly<Record<MemberKey, string>>;
  readonly output: string;
  readonly dlq: string;
}

/**
 * What a job's ECS worker tasks run on: Fargate, Fargate Spot (up to 70 % cheaper; a task can be
 * reclaimed with two minutes' notice, which the job survives as any lost member), or `gpu`: the
 * stack's GPU instances (the construct's `gpuWorkers`) with the GPU build of the worker image.
 * The local runtime runs processes and ignores it.
 */
export const WORKER_CAPACITIES = ["fargate", "fargate-spot", "gpu"] as const;
export type WorkerCapacity = (typeof WORKER_CAPACITIES)[number];

export interface JobSpec {
  readonly version: 1;
  readonly jobId: string;
  readonly mode: JobMode;
  readonly cluster: ClusterShape;
  readonly python: PythonConfig;
  readonly input: { readonly columns: readonly Column[] };
  readonly output: { readonly columns: readonly Column[] } | null;
  readonly batchSize: number;
  readonly remainder: RemainderPolicy;
  readonly bounded: boolean;
  readonly queues: JobQueues;
  readonly bucket: string;
  /** Training: where the worker exports the model; an unbounded job exports each version under `versionsUri`. */
  readonly model: { readonly modelId: string; readonly version: string; readonly exportUri: string; readonly versionsUri?: string; readonly inference?: InferenceConfig | null } | null;
  /** Inference: the SavedModel the workers load. */
  readonly modelArtifactUri: string | null;
  /** Warm start: metadata URI of a trained model whose weights training starts from. */
  readonly initModelUri: string | null;
  readonly checkpoint: { readonly everySteps: number; readonly everySeconds: number };
  /** Unbounded training: a new model version every this many steps or seconds (0: off). */
  readonly export?: { readonly everySteps: number; readonly everySeconds: number };
  readonly leaseMs: number;
  /** The job's worker capacity; absent: the stack's default (`workerCapacity` of the construct). */
  readonly workerCapacity?: WorkerCapacity;
}

/** Members that receive data: the workers, never the parameter servers. */
export function dataMembers(cluster: ClusterShape): MemberKey[] {
  return Array.from({ length: cluster.worker }, (_, i) => `worker-${i}` as MemberKey);
}

/**
 * Every member the launcher starts: the workers and parameter servers, and with parameter servers
 * one chief, which runs the training entry as the ClusterCoordinator (python/serverless_tf/worker/strategy.py).
 */
export function allMembers(cluster: ClusterShape): MemberRef[] {
  return [
    ...(cluster.ps > 0 ? [{ role: "chief" as const, index: 0 }] : []),
    ...Array.from({ length: cluster.worker }, (_, index) => ({ role: "worker" as const, index })),
    ...Array.from({ length: cluster.ps }, (_, index) => ({ role: "ps" as const, index })),
  ];
}

const optionalSecrets = (secrets: Record<string, string> | undefined) => (secrets && Object.keys(secrets).length ? { secrets } : {});

export function parsePythonConfig(f: Fields): PythonConfig {
  const strings = (v: unknown): v is Record<string, string> => isObject(v) && Object.values(v).every((s) => typeof s === "string");
  return {
    scripts: f.get("scripts", "an array of s3:// URIs (upload the scripts first: a function cannot read your disk)", (v): v is string[] => Array.isArray(v) && v.every(isS3Uri)),
    entry: f.get("entry", "a string", (v): v is string => typeof v === "string"),
    hyperParams: f.optional("hyperParams", "a JSON object", isObject) ?? {},
    env: f.optional("env", "an object of string values", strings) ?? {},
    ...optionalSecrets(f.optional("secrets", "an object of environment name -> Secrets Manager ARN", strings)),
  };
}

export function parseRemainderPolicy(f: Fields): RemainderPolicy {
  const policy = f.get("policy", '"drop", "pad" or "flush"', (v): v is "drop" | "pad" | "flush" => v === "drop" || v === "pad" || v === "flush");
  return policy === "flush" ? { policy, afterMs: f.get("afterMs", "a non-negative integer", isInt(0)) } : { policy };
}

export function parseInferenceConfig(f: Fields): InferenceConfig {
  return {
    python: parsePythonConfig(f.object("python")),
    input: { columns: f.columns("input") },
    output: { columns: f.columns("output") },
    batchSize: f.get("batchSize", "a positive integer", isInt(1)),
    ...(f.has("servingMode") ? { servingMode: f.get("servingMode", '"script" or "signature"', (v): v is ServingMode => (SERVING_MODES as readonly unknown[]).includes(v)) } : {}),
  };
}

const SPEC = "job spec";

/**
 * Reads a job spec back from the registry (what the coordinator wrote), checked field by field:
 * a spec another version wrote, or a damaged item, fails here with the field named instead of
 * deep inside a stage.
 *
 * @throws EventShapeError naming the field, what it held and what is allowed.
 * @example
 * const spec = parseJobSpec((await registry.getJob(jobId))!.spec);
 */
export function parseJobSpec(json: unknown): JobSpec {
  const f = Fields.of(json, "spec", SPEC);
  f.get("version", "1 (a spec of this release)", (v): v is 1 => v === 1);
  const cluster = f.object("cluster");
  const queues = f.object("queues");
  const everyFields = (o: Fields) => ({ everySteps: o.get("everySteps", "a non-negative integer", isInt(0)), everySeconds: o.get("everySeconds", "a non-negative integer", isInt(0)) });
  const uriOrNull = (key: string) => f.optional(key, "an s3:// URI or null", isS3Uri) ?? null;
  const isString = (v: unknown): v is string => typeof v === "string";
  const model = f.has("model") ? f.object("model") : undefined;
  const versionsUri = model?.optional("versionsUri", "an s3:// URI", isS3Uri);
  return {
    version: 1,
    jobId: f.get("jobId", `a job id matching ${JOB_ID_PATTERN}`, (v): v is string => typeof v === "string" && JOB_ID_PATTERN.test(v)),
    mode: f.get("mode", '"train" or "inference"', (v): v is JobMode => v === "train" || v === "inference"),
    cluster: { worker: cluster.get("worker", "a positive integer", isInt(1)), ps: cluster.get("ps", "a non-negative integer", isInt(0)) },
    python: parsePythonConfig(f.object("python")),
    input: { columns: f.columns("input") },
    output: f.has("output") ? { columns: f.columns("output") } : null,
    batchSize: f.get("batchSize", "a positive integer", isInt(1)),
    remainder: parseRemainderPolicy(f.object("remainder")),
    bounded: f.get("bounded", "a boolean", (v): v is boolean => typeof v === "boolean"),
    queues: {
      feed: queues.get("feed", "an object of member -> queue URL", (v): v is Record<MemberKey, string> => isObject(v) && Object.entries(v).every(([k, url]) => /^(worker|ps)-\d+$/.test(k) && typeof url === "string")),
      output: queues.get("output", "a queue URL", isString),
      dlq: queues.get("dlq", "a queue URL", isString),
    },
    bucket: f.get("bucket", "a bucket name", isString),
    model: model
      ? {
          modelId: model.get("modelId", "a model id", (v): v is string => typeof v === "string" && MODEL_ID_PATTERN.test(v)),
          version: model.get("version", "a version name", isString),
          exportUri: model.get("exportUri", "an s3:// URI", isS3Uri),
          ...(versionsUri ? { versionsUri } : {}),
          ...(model.has("inference") ? { inference: parseInferenceConfig(model.object("inference")) } : {}),
        }
      : null,
    modelArtifactUri: uriOrNull("modelArtifactUri"),
    initModelUri: uriOrNull("initModelUri"),
    checkpoint: everyFields(f.object("checkpoint")),
    ...(f.has("export") ? { export: everyFields(f.object("export")) } : {}),
    leaseMs: f.get("leaseMs", "a positive integer of milliseconds", isInt(1)),
    ...(f.has("workerCapacity") ? { workerCapacity: f.get("workerCapacity", WORKER_CAPACITIES.join(" | "), isWorkerCapacity) } : {}),
  };
}

export const isWorkerCapacity = (v: unknown): v is WorkerCapacity => (WORKER_CAPACITIES as readonly unknown[]).includes(v);
