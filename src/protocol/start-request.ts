/**
 * Parses what the coordinator function is invoked with: `{ "action": "start", "request": <JobRequest> }`.
 * Only the shape is checked here (types, enums, s3:// URIs); what a job may ask for (cluster
 * size, entry names, ...) is the coordinator's `validateRequest`, so both paths share one rule set.
 */
import { TABLE_FORMATS, type TableFormat } from "../codec/table-rows.ts";
import { JOB_ID_PATTERN, MODEL_ID_PATTERN } from "./names.ts";
import { Fields, isInt, isObject, isS3Uri, type Json } from "./fields.ts";
import type { TableSource } from "./table-source.ts";
import type { JobSpec } from "./spec.ts";
import type { WatchPolicy } from "./watch-message.ts";

import { EventShapeError } from "./errors.ts";
import { WORKER_CAPACITIES, isWorkerCapacity, parseInferenceConfig, parsePythonConfig, parseRemainderPolicy, type InferenceConfig, type WorkerCapacity } from "./spec.ts";

export interface QueueSettings {
  /** Seconds a received message stays invisible; a consumer that dies releases it after this. */
  readonly visibilityTimeoutSeconds: number;
  /** Receives before a message moves to the DLQ. */
  readonly maxReceiveCount: number;
}

export const DEFAULT_QUEUE_SETTINGS: QueueSettings = { visibilityTimeoutSeconds: 60, maxReceiveCount: 5 };

/**
 * What a caller asks for: the user-facing half of a {@link JobSpec} (its python scripts may still
 * be local paths, uploaded to the job's code prefix), plus the table and the optional settings.
 */
export interface JobRequest extends Pick<JobSpec, "mode" | "cluster" | "python" | "input" | "output" | "batchSize" | "remainder"> {
  readonly jobId?: string;
  readonly source: TableSource;
  readonly bucket: string;
  /** Training: the model id to export to, and how the model will be served. */
  readonly model?: { readonly modelId: string; readonly inference: InferenceConfig | null } | null;
  readonly modelArtifactUri?: string | null;
  readonly initModelUri?: string | null;
  readonly checkpoint?: { readonly everySteps: number; readonly everySeconds: number };
  /** Unbounded training: export a new model version every this many steps or seconds. */
  readonly export?: { readonly everySteps: number; readonly everySeconds: number };
  readonly leaseMs?: number;
  /** What the job's ECS worker tasks run on; absent: the stack's default. */
  readonly workerCapacity?: WorkerCapacity;
  readonly rowsPerShard?: number;
  readonly queueSettings?: QueueSettings;
}

const TYPE = "coordinator event";

/** The watch settings a start may override (the rest are the stack's `JOB_WATCH.policy`). */
export type WatchOverrides = Partial<Pick<WatchPolicy, "timeoutMs" | "maxWorkerRestarts" | "progressTimeoutMs">>;

export type CoordinatorEvent = { readonly action: "start"; readonly request: JobRequest; readonly watch: WatchOverrides };

function source(f: Fields): TableSource {
  const kind = f.get("kind", '"s3", "rows" or "queue"', (v): v is "s3" | "rows" | "queue" => v === "s3" || v === "rows" || v === "queue");
  // A streaming fit's table: the stack maps the queue to its stream-feed function (src/jobs/stream-mapping.ts).
  if (kind === "queue") return { kind, queueUrl: f.get("queueUrl", "an SQS queue URL", (v): v is string => typeof v === "string" && /^https?:\/\//.test(v)) };
  if (kind === "rows") return { kind, rows: f.get("rows", "an array of row objects", (v): v is Json[] => Array.isArray(v) && v.every(isObject)) };
  const format = f.optional("format", TABLE_FORMATS.join(" | "), (v): v is TableFormat => (TABLE_FORMATS as readonly unknown[]).includes(v));
  return { kind, uri: f.get("uri", "an s3:// URI of a prefix", isS3Uri), ...(format ? { format } : {}) };
}

function request(f: Fields, defaults: { readonly bucket: string }): JobRequest {
  const jobId = f.optional("jobId", `a job id matching ${JOB_ID_PATTERN}`, (v): v is string => typeof v === "string" && JOB_ID_PATTERN.test(v));
  const cluster = f.object("cluster");
  const model = f.has("model") ? f.object("model") : undefined;
  const checkpoint = f.has("checkpoint") ? f.object("checkpoint") : undefined;
  const exported = f.has("export") ? f.object("export") : undefined;
  const optionalUri = (key: string) => f.optional(key, "an s3:// URI or null", isS3Uri) ?? null;
  return {
    ...(jobId ? { jobId } : {}),
    mode: f.get("mode", '"train" or "inference"', (v): v is "train" | "inference" => v === "train" || v === "inference"),
    cluster: { worker: cluster.get("worker", "an integer", isInt(0)), ps: cluster.optional("ps", "an integer", isInt(0)) ?? 0 },
    python: parsePythonConfig(f.object("python")),
    input: { columns: f.columns("input") },
    output: f.has("output") ? { columns: f.columns("output") } : null,
    batchSize: f.get("batchSize", "a positive integer", isInt(1)),
    remainder: parseRemainderPolicy(f.object("remainder")),
    source: source(f.object("source")),
    bucket: f.optional("bucket", "a bucket name", (v): v is string => typeof v === "string" && /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(v)) ?? defaults.bucket,
    model: model
      ? {
          modelId: model.get("modelId", "lowercase letters, digits and dashes", (v): v is string => typeof v === "string" && MODEL_ID_PATTERN.test(v)),
          inference: model.has("inference") ? parseInferenceConfig(model.object("inference")) : null,
        }
      : null,
    modelArtifactUri: optionalUri("modelArtifactUri"),
    initModelUri: optionalUri("initModelUri"),
    ...(checkpoint ? { checkpoint: { everySteps: checkpoint.get("everySteps", "a non-negative integer", isInt(0)), everySeconds: checkpoint.get("everySeconds", "a non-negative integer", isInt(0)) } } : {}),
    ...(exported ? { export: { everySteps: exported.get("everySteps", "a non-negative integer", isInt(0)), everySeconds: exported.get("everySeconds", "a non-negative integer", isInt(0)) } } : {}),
    ...(f.has("leaseMs") ? { leaseMs: f.get("leaseMs", "an integer of at least 1000", isInt(1_000)) } : {}),
    ...(f.has("workerCapacity") ? { workerCapacity: f.get("workerCapacity", WORKER_CAPACITIES.join(" | "), isWorkerCapacity) } : {}),
    ...(f.has("rowsPerShard") ? { rowsPerShard: f.get("rowsPerShard", "a positive integer", isInt(1)) } : {}),
  };
}

function watch(f: Fields): WatchOverrides {
  f.only(["timeoutMs", "maxWorkerRestarts", "progressTimeoutMs"]);
  return {
    ...(f.has("timeoutMs") ? { timeoutMs: f.get("timeoutMs", "an integer of at least 1000 (ms)", isInt(1_000)) } : {}),
    ...(f.has("maxWorkerRestarts") ? { maxWorkerRestarts: f.get("maxWorkerRestarts", "a non-negative integer", isInt(0)) } : {}),
    ...(f.has("progressTimeoutMs") ? { progressTimeoutMs: f.get("progressTimeoutMs", "a non-negative integer (ms; 0: never)", isInt(0)) } : {}),
  };
}

/**
 * Checks a coordinator invocation (an object, or its JSON text) and returns it typed.
 *
 * @throws EventShapeError naming the field, what it held and what is allowed.
 * @example
 * const { request } = parseCoordinatorEvent({ action: "start", request: { mode: "train", ... } }, { bucket: "artifacts" });
 */
export function parseCoordinatorEvent(event: unknown, defaults: { readonly bucket: string }): CoordinatorEvent {
  let json = event;
  if (typeof event === "string") {
    try {
      json = JSON.parse(event);
    } catch {
      throw new EventShapeError(TYPE, "event", event, "JSON");
    }
  }
  const f = Fields.of(json, "event", TYPE);
  f.get("action", '"start"', (v): v is "start" => v === "start");
  return { action: "start", request: request(f.object("request"), defaults), watch: f.has("watch") ? watch(f.object("watch")) : {} };
}
