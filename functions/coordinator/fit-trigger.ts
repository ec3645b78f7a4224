/**
 * Event-triggered training: a new data object under the training prefix starts a fit on that
 * object, with the estimator's params read from `_fit.json` in the same folder:
 *
 * ```json
 * { "params": { "trainScripts": ["s3://bucket/code/model.py"], "trainEntry": "train", "modelId": "digits", ... },
 *   "schema": [{ "name": "pixels", "dtype": "FLOAT32", "shape": { "fixed": 64 } }, ...],
 *   "format": "jsonl" }
 * ```
 *
 * `params` is what `TFEstimator.params.toJSON()` gives (scripts must be s3:// URIs); `format`
 * is optional (from the key's extension otherwise). Write `_fit.json` before the data.
 *
 * S3 delivers events at least once, so the job id is derived from bucket, key and ETag: a
 * duplicate event for the same object version asks for the same job, which the registry's
 * conditional create refuses (JobConflictError): one object, one job.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { processSqsBatch } from "../../src/aws/sqs-batch.ts";
import type { SqsHandler, StartFit } from "../../src/runtime/functions.ts";
import { ParamMap } from "../../src/api/params.ts";
import { ESTIMATOR_PARAMS } from "../../src/api/tf-params.ts";
import { SchemaError } from "../../src/codec/errors.ts";
import { parseColumns } from "../../src/codec/schema.ts";
import { ConfigError } from "../../src/errors.ts";
import { EventShapeError } from "../../src/protocol/errors.ts";
import { parseS3Notification } from "../../src/protocol/s3-notification.ts";
import { checkFormat, formatOfKey } from "../../src/codec/table-rows.ts";
import type { Deps } from "../../src/jobs/deps.ts";
import { s3Uri, type S3Location } from "../../src/protocol/names.ts";
import { JobConflictError } from "../../src/registry/errors.ts";
import { BUCKET_PREFIXES } from "../../src/resources/definitions.ts";
import { getJson, headObject } from "../../src/storage/objects.ts";

export const FIT_SPEC_OBJECT = "_fit.json";
/** Where the bucket's notifications for fit triggers look (src/resources/definitions.ts, the stack's too). */
export const DEFAULT_TRAINING_PREFIX = BUCKET_PREFIXES.training;

/** The contents of `_fit.json`. */
export interface FitSpecFile {
  readonly params: Record<string, unknown>;
  readonly schema: unknown;
  readonly format?: string;
}

export type TriggerOutcome =
  | { readonly status: "started"; readonly jobId: string }
  | { readonly status: "duplicate"; readonly jobId: string }
  | { readonly status: "ignored"; readonly reason: string };

/** `fit-` and 24 hex digits of SHA-256 over bucket, key and ETag: the same object version, the same job. */
export function fitJobId(bucket: string, key: string, etag: string): string {
  return `fit-${createHash("sha256").update(`${bucket}\n${key}\n${etag.replace(/"/g, "")}`).digest("hex").slice(0, 24)}`;
}

/**
 * S3 keys are names, not paths, but the spec beside a key is found with path rules: a `.` or `..`
 * segment (`training/a/../../models/x/data.jsonl`) would read another prefix's `_fit.json`.
 *
 * @example
 * isPlainKey("training/digits/part-0.jsonl"); // true
 * isPlainKey("training/a/../../models/x/data.jsonl"); // false
 */
export function isPlainKey(key: string): boolean {
  return !key.split("/").some((segment) => segment === ".." || segment === ".");
}

/** Starts one fit for the data object at `object`, or says why not. */
export async function triggerFit(deps: Deps, object: S3Location, start: StartFit): Promise<TriggerOutcome> {
  if (!isPlainKey(object.key)) return { status: "ignored", reason: `${object.key} has a . or .. segment; fits start only for plain keys` };
  const name = posix.basename(object.key);
  if (name.startsWith("_") || name.startsWith(".")) return { status: "ignored", reason: `${name} is not data (names starting with _ or . are reserved)` };
  const specAt = { bucket: object.bucket, key: posix.join(posix.dirname(object.key), FIT_SPEC_OBJECT) };
  const found = await getJson<FitSpecFile>(deps.clients, specAt);
  if (!found) return { status: "ignored", reason: `no ${s3Uri(specAt)} beside ${s3Uri(object)}; write the fit spec before the data` };
  const format = found.value.format !== undefined ? checkFormat(found.value.format) : formatOfKey(object.key);
  if (!format) return { status: "ignored", reason: `${object.key} is not .jsonl, .csv or .tfrecord and ${FIT_SPEC_OBJECT} names no format` };
  const head = await headObject(deps.clients, object);
  if (!head) return { status: "ignored", reason: `${s3Uri(object)} was deleted before its fit started` };
  const jobId = fitJobId(object.bucket, object.key, head.etag);
  if (await deps.registry.getJob(jobId)) return { status: "duplicate", jobId };
  // Checked here, so a _fit.json that can never start a fit is let go with its reason.
  new ParamMap(ESTIMATOR_PARAMS).loadJSON(found.value.params, `${s3Uri(specAt)}`);
  const table = { uri: s3Uri(object), columns: parseColumns(found.value.schema), format };
  try {
    await start({ jobId, params: found.value.params, table });
  } catch (e) {
    if (e instanceof JobConflictError) return { status: "duplicate", jobId };
    throw e;
  }
  return { status: "started", jobId };
}

/**
 * The coordinator's handler for the fit-triggers queue (S3 notifications for the training prefix).
 *
 * @example
 * const handler = createFitTriggerHandler(deps, async (fit) => void console.log(fit.jobId, fit.table.uri));
 */
export function createFitTriggerHandler(deps: Deps, start: StartFit, log: (line: string) => void = (line) => console.error(line)): SqsHandler {
  return (event) =>
    processSqsBatch(
      event,
      async (record) => {
        for (const object of parseS3Notification(record.body)) {
          const outcome = await triggerFit(deps, object, start);
          log(`[fit-trigger] s3://${object.bucket}/${object.key}: ${outcome.status} ${"jobId" in outcome ? outcome.jobId : outcome.reason}`);
        }
      },
      // A malformed event or a _fit.json that is not valid never succeeds on a retry.
      { name: "fit-trigger", isFinal: (e) => e instanceof EventShapeError || e instanceof ConfigError || e instanceof SchemaError, log },
    );
}
