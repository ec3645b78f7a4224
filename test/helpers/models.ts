/**
 * Publishes hand-made model versions (the scale model of test/integration/models) without a
 * fit: SavedModels saved by one Python process, uploaded as the checkpoint stage lays them out,
 * `metadata.json` written and `latest.json` moved by the real publish code.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative } from "node:path";
import { moveLatest } from "../../functions/checkpoint/publish.ts";
import type { AwsClients } from "../../src/aws/clients.ts";
import type { Column } from "../../src/codec/schema.ts";
import { modelKeys, s3Uri } from "../../src/protocol/names.ts";
import { projectPython, projectRoot } from "../../src/workers/paths.ts";
import { MODEL_FORMAT, MODEL_FORMAT_VERSION, newVersion, type ModelMetadata, METADATA_OBJECT } from "../../src/protocol/model-metadata.ts";
import { putJson, putObject } from "../../src/storage/objects.ts";

export const SCALE_MODEL = join(projectRoot, "test/integration/models/scale_model.py");

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]));
}

/** Saves one scale model per weight (one Python process for all) and returns their folders. */
export function saveScaleModels(weights: readonly number[]): string[] {
  const root = mkdtempSync(join(tmpdir(), "stf-scale-"));
  const outs = weights.map((_, i) => join(root, `w${i}`));
  const r = spawnSync(projectPython, [SCALE_MODEL, ...outs.flatMap((o, i) => [o, String(weights[i])])], { env: { ...process.env, TF_USE_LEGACY_KERAS: "1", TF_CPP_MIN_LOG_LEVEL: "2" }, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`saving the scale models failed:\n${r.stderr}`);
  return outs;
}

/** How a published SavedModel is served: the script with its inference entry, and its columns; with `onnx`, a signature-mode version. */
export interface Serving {
  readonly script: string;
  readonly entry: string;
  readonly input: readonly Column[];
  readonly output: readonly Column[];
  /** A local `model.onnx` whose inputs and outputs are `input` and `output` by name. */
  readonly onnx?: string;
}

/** Uploads the SavedModel in `dir` as a version of `modelId` served by `serving`, writes its metadata and moves latest to it. */
export async function publishSavedModel(clients: AwsClients, bucket: string, modelId: string, dir: string, serving: Serving, version = newVersion("test-publish")): Promise<ModelMetadata> {
  const prefix = modelKeys.version(modelId, version);
  await Promise.all(files(dir).map((f) => putObject(clients, { bucket, key: `${prefix}artifact/${relative(dir, f)}` }, readFileSync(f))));
  const script = { bucket, key: `models/${modelId}/code/${basename(serving.script)}` };
  await putObject(clients, script, readFileSync(serving.script));
  const onnx = serving.onnx ? { bucket, key: `${prefix}serving/model.onnx` } : undefined;
  if (onnx) await putObject(clients, onnx, readFileSync(serving.onnx!));
  const metadata: ModelMetadata = {
    ...(onnx ? { serving: { mode: "signature", onnxUri: s3Uri(onnx), opset: 17, inputs: [...serving.input], outputs: [...serving.output] } } : {}),
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    modelId,
    version,
    jobId: "test-publish",
    createdAt: new Date().toISOString(),
    artifactUri: s3Uri({ bucket, key: `${prefix}artifact/` }),
    step: 0,
    inference: {
      python: { scripts: [s3Uri(script)], entry: serving.entry, hyperParams: {}, env: {} },
      input: { columns: [...serving.input] },
      output: { columns: [...serving.output] },
      batchSize: 16,
    },
  };
  await putJson(clients, { bucket, key: `${prefix}${METADATA_OBJECT}` }, metadata);
  await moveLatest(clients, bucket, metadata);
  return metadata;
}

/** Uploads `dir` as a version of `modelId` serving through scale_model.py's `predict`, and moves latest to it. */
export function publishScaleModel(
  clients: AwsClients,
  bucket: string,
  modelId: string,
  dir: string,
  version = newVersion("test-publish"),
  /** Input columns besides `x` (the model reads only `x`; the others are parsed and checked). */
  extraInputs: readonly Column[] = [],
): Promise<ModelMetadata> {
  const serving = { script: SCALE_MODEL, entry: "predict", input: [{ name: "x", dtype: "FLOAT32", shape: "scalar" } as const, ...extraInputs], output: [{ name: "y", dtype: "FLOAT32", shape: "scalar" } as const] };
  return publishSavedModel(clients, bucket, modelId, dir, serving, version);
}

/** p-th percentile (0..100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
