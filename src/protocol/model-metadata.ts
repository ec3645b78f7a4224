/**
 * Model metadata: what a `TFModel` is. It holds no weights, only where they are and how to run
 * them, so a model can be passed around, saved in a pipeline and reloaded while an unbounded
 * fit keeps publishing new versions.
 */
import { ServerlessTfError } from "../errors.ts";
import type { Column } from "../codec/schema.ts";
import type { InferenceConfig } from "./spec.ts";

export type { InferenceConfig };

/**
 * A signature-mode export's serving signature as ONNX (python/serverless_tf/worker/export.py):
 * one graph input per input column and one output per output column, by name, checked against
 * the columns' dtypes and shapes before upload.
 */
export interface OnnxSignature {
  readonly opset: number;
  readonly inputs: readonly Column[];
  readonly outputs: readonly Column[];
}

/** What a worker writes last under a version's prefix: the files of its export, with their sizes. */
export interface ExportManifest {
  readonly jobId: string;
  readonly member: string;
  readonly step: number;
  readonly files: readonly { readonly key: string; readonly size: number }[];
  readonly createdAt?: string | number;
  /** Signature mode: where the chief wrote `model.onnx` (an S3 key) and its signature. */
  readonly serving?: { readonly mode: "signature"; readonly onnx: OnnxSignature & { readonly key: string } };
}

/** The manifest's name, beside the exported files; the checkpoint stage is notified of it. */
export const EXPORT_MANIFEST = "export.json";
/** The published version's metadata, written once by the checkpoint stage. */
export const METADATA_OBJECT = "metadata.json";

export const MODEL_FORMAT = "serverless-tf/model";
export const MODEL_FORMAT_VERSION = 1;

export interface ModelMetadata {
  readonly format: typeof MODEL_FORMAT;
  readonly formatVersion: typeof MODEL_FORMAT_VERSION;
  readonly modelId: string;
  readonly version: string;
  readonly jobId: string;
  readonly createdAt: string;
  /** s3:// prefix of the exported SavedModel. */
  readonly artifactUri: string;
  readonly step: number;
  readonly inference: InferenceConfig | null;
  /** Signature mode: the version's ONNX serving signature (`onnxUri`, s3://); absent for script mode. */
  readonly serving?: { readonly mode: "signature"; readonly onnxUri: string } & OnnxSignature;
}

/** Pointer object at `models/<modelId>/latest.json`. */
export interface LatestPointer {
  readonly modelId: string;
  readonly version: string;
  readonly metadataUri: string;
}

export class ModelFormatError extends ServerlessTfError {}

export function checkModelMetadata(value: unknown, source: string): ModelMetadata {
  const m = value as Partial<ModelMetadata> | null;
  if (!m || typeof m !== "object" || m.format !== MODEL_FORMAT) {
    throw new ModelFormatError(`${source} is not serverless-tf model metadata (format ${JSON.stringify(m?.format)}); point at a metadata.json written by a fit.`);
  }
  if (m.formatVersion !== MODEL_FORMAT_VERSION) {
    throw new ModelFormatError(`${source} has model format version ${JSON.stringify(m.formatVersion)}, this release reads ${MODEL_FORMAT_VERSION}. Upgrade serverless-tf to load it.`);
  }
  for (const field of ["modelId", "version", "jobId", "artifactUri"] as const) {
    if (typeof m[field] !== "string") throw new ModelFormatError(`${source} lacks ${field}; the file is damaged. Re-export the model.`);
  }
  return m as ModelMetadata;
}

/** Sortable version names: zero-padded time first, so a later export always sorts after. */
export function newVersion(jobId: string, now = Date.now()): string {
  return `${String(now).padStart(14, "0")}-${jobId}`;
}
