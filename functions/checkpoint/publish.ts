/**
 * The checkpoint stage: turns a finished export into a published model version.
 *
 * A worker uploads the SavedModel files, then `export.json` last. This stage checks that every
 * listed file is there with its size, writes `metadata.json` once (`If-None-Match: *`, so a
 * version never changes after publication) and moves `latest.json` with `If-Match` on the ETag
 * it read, so two publishers can never move the pointer backwards or over each other.
 */
import type { AwsClients } from "../../src/aws/clients.ts";
import { ServerlessTfError } from "../../src/errors.ts";
import { JobStateError } from "../../src/registry/errors.ts";
import type { Deps } from "../../src/jobs/deps.ts";
import { modelKeys, s3Uri, type S3Location } from "../../src/protocol/names.ts";
import type { JobSpec } from "../../src/protocol/spec.ts";
import { EXPORT_MANIFEST, METADATA_OBJECT, MODEL_FORMAT, MODEL_FORMAT_VERSION, type ExportManifest, type LatestPointer, type ModelMetadata } from "../../src/protocol/model-metadata.ts";
import { getJson, headObject, isPreconditionFailed, putJson } from "../../src/storage/objects.ts";
import { parseJobSpec, type InferenceConfig } from "../../src/protocol/spec.ts";

export class IncompleteExportError extends ServerlessTfError {}

/**
 * An export that is not its job's to publish: under another model's prefix, at a version its job
 * does not write, with a version time in the future (versions compare as strings, so it would
 * block every later publication), or from a job that failed or was stopped. Never retried; the
 * model's latest version stays as it was.
 */
export class RejectedExportError extends ServerlessTfError {}

/** How far ahead of this host's clock a version's time may be: the skew budget between hosts. */
const VERSION_CLOCK_SKEW_MS = 5 * 60_000;

const VERSION_NAME = /^(\d{14})-(.+)$/;

/**
 * The export's place must be the one its job's spec gives it: a bounded job's `exportUri`, or a
 * version of an unbounded job's `versionsUri` named `<time>-<jobId>` (python/serverless_tf/worker/export.py
 * next_version). A worker can write under `models/`, so the manifest's own word is not enough.
 */
function checkExportBelongs(manifestAt: S3Location, versionPrefix: string, manifest: ExportManifest, spec: { readonly bounded: boolean; readonly model: NonNullable<JobSpec["model"]> }, state: string, now = Date.now()): void {
  const at = s3Uri({ bucket: manifestAt.bucket, key: versionPrefix });
  const refuse = (why: string) => {
    throw new RejectedExportError(`export ${s3Uri(manifestAt)} of job ${manifest.jobId} is refused: ${why}. Nothing was published; the model's latest version is unchanged.`);
  };
  if (state !== "RUNNING" && state !== "SUCCEEDED") refuse(`the job is ${state}`);
  if (spec.bounded || !spec.model.versionsUri) {
    if (at !== spec.model.exportUri) refuse(`the job exports to ${spec.model.exportUri} only`);
  } else {
    const version = versionPrefix.slice(0, -1).split("/").at(-1)!;
    const name = VERSION_NAME.exec(version);
    if (`${spec.model.versionsUri}${version}/` !== at || !name || name[2] !== manifest.jobId) refuse(`the job's versions are ${spec.model.versionsUri}<time>-${manifest.jobId}/`);
    if (Number(name![1]) > now + VERSION_CLOCK_SKEW_MS) refuse(`version time ${name![1]} is more than ${VERSION_CLOCK_SKEW_MS / 60_000} minutes ahead of this host's clock`);
  }
  if (manifest.serving && !manifest.serving.onnx?.key?.startsWith(versionPrefix)) refuse(`its model.onnx (${manifest.serving.onnx?.key}) is outside the version's prefix`);
}

/** The spec of a training job carries how its model will be served. */
export type TrainSpecWithModel = JobSpec & { readonly model: NonNullable<JobSpec["model"]> & { readonly inference?: InferenceConfig | null } };

function fileLocation(bucket: string, versionPrefix: string, key: string): S3Location {
  return { bucket, key: key.startsWith(versionPrefix) || key.startsWith("models/") ? key : `${versionPrefix}artifact/${key}` };
}

export async function publishExport(deps: Deps, manifestAt: S3Location): Promise<ModelMetadata> {
  if (!manifestAt.key.endsWith(EXPORT_MANIFEST)) throw new IncompleteExportError(`${s3Uri(manifestAt)} is not an ${EXPORT_MANIFEST}`);
  const manifest = (await getJson<ExportManifest>(deps.clients, manifestAt))?.value;
  if (!manifest) throw new IncompleteExportError(`${s3Uri(manifestAt)} disappeared before it could be published`);
  const versionPrefix = manifestAt.key.slice(0, -EXPORT_MANIFEST.length);
  const sizes = await Promise.all(manifest.files.map((f) => headObject(deps.clients, fileLocation(manifestAt.bucket, versionPrefix, f.key))));
  const missing = manifest.files.filter((f, i) => sizes[i]?.size !== f.size);
  if (missing.length) {
    throw new IncompleteExportError(`export ${s3Uri(manifestAt)} is incomplete: ${missing.length} file(s) missing or of the wrong size, first ${missing[0]!.key}. It will be retried; if it persists, re-run the export.`);
  }
  const job = await deps.registry.getJob(manifest.jobId);
  if (!job) throw new IncompleteExportError(`export ${s3Uri(manifestAt)} names job ${manifest.jobId}, which the registry does not know`);
  const spec = parseJobSpec(job.spec);
  if (!spec.model) throw new IncompleteExportError(`job ${manifest.jobId} has no model to export to`);
  checkExportBelongs(manifestAt, versionPrefix, manifest, { bounded: spec.bounded, model: spec.model }, job.state);
  const metadata: ModelMetadata = {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    modelId: spec.model.modelId,
    version: versionPrefix.split("/").at(-2)!,
    jobId: manifest.jobId,
    createdAt: new Date().toISOString(),
    artifactUri: s3Uri({ bucket: manifestAt.bucket, key: `${versionPrefix}artifact/` }),
    step: manifest.step,
    inference: spec.model.inference ?? null,
    ...(manifest.serving ? { serving: servingOf(manifestAt.bucket, manifest.serving) } : {}),
  };
  const metadataAt = { bucket: manifestAt.bucket, key: `${versionPrefix}${METADATA_OBJECT}` };
  const published = await writeOnce(deps.clients, metadataAt, metadata);
  await moveLatest(deps.clients, manifestAt.bucket, published);
  try {
    await deps.registry.transitionJob(manifest.jobId, [job.state], job.state, { modelUri: s3Uri(metadataAt) });
  } catch (e) {
    // The job moved on (finished or failed) meanwhile; the model is published all the same.
    if (!(e instanceof JobStateError)) throw e;
  }
  return published;
}

/** The manifest's signature, its ONNX file named by URI as the artifact is. */
function servingOf(bucket: string, serving: NonNullable<ExportManifest["serving"]>): NonNullable<ModelMetadata["serving"]> {
  const { key, ...signature } = serving.onnx;
  if (serving.mode !== "signature" || typeof key !== "string") throw new IncompleteExportError(`the export's serving section is not a signature-mode ONNX file: ${JSON.stringify(serving)}. Re-run the export with this release's worker.`);
  return { mode: "signature", onnxUri: s3Uri({ bucket, key }), ...signature };
}

async function writeOnce(clients: AwsClients, at: S3Location, metadata: ModelMetadata): Promise<ModelMetadata> {
  try {
    await putJson(clients, at, metadata, { ifNoneMatch: "*" });
    return metadata;
  } catch (e) {
    if (!isPreconditionFailed(e)) throw e;
    // A redelivered event: the version is already published; keep what is there.
    return (await getJson<ModelMetadata>(clients, at))!.value;
  }
}

/** Moves `latest.json` forward to `metadata`'s version unless a later version is already there. */
export async function moveLatest(clients: AwsClients, bucket: string, metadata: ModelMetadata, attempts = 10): Promise<boolean> {
  const at = { bucket, key: modelKeys.latest(metadata.modelId) };
  const pointer: LatestPointer = {
    modelId: metadata.modelId,
    version: metadata.version,
    metadataUri: s3Uri({ bucket, key: `${modelKeys.version(metadata.modelId, metadata.version)}${METADATA_OBJECT}` }),
  };
  for (let attempt = 0; attempt < attempts; attempt++) {
    const current = await getJson<LatestPointer>(clients, at);
    if (current && current.value.version >= metadata.version) return false;
    try {
      await putJson(clients, at, pointer, current ? { ifMatch: current.etag } : { ifNoneMatch: "*" });
      return true;
    } catch (e) {
      if (!isPreconditionFailed(e)) throw e;
    }
  }
  throw new ServerlessTfError(`could not move ${s3Uri(at)} to ${metadata.version} after ${attempts} attempts: another publisher keeps changing it`);
}
