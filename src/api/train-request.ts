/**
 * The coordinator request a `TFEstimator`'s params make for a table: pure, so a Lambda (the
 * coordinator, starting a fit trigger's job) builds it without the local runtime the estimator's
 * `fit` falls back to.
 */
import type { Column } from "../codec/schema.ts";

import { ConfigError } from "../errors.ts";
import type { RemainderPolicy } from "../protocol/spec.ts";

import type { ParamMap } from "./params.ts";
import { columnOf, type Table } from "./table.ts";
import { ClusterParams, FeedParams, InferenceParams, ModelParams, TrainParams, type RemainderParam } from "./tf-params.ts";
import { type JobRequest } from "../protocol/start-request.ts";
import { type InferenceConfig } from "../protocol/spec.ts";

export function remainderPolicy(value: RemainderParam): RemainderPolicy {
  return value === "drop" || value === "pad" ? { policy: value } : { policy: "flush", afterMs: value.flushAfterMs };
}

/** `{ secrets }` when any is set: a spec without secrets stays as it was. */
const secretsOf = (secrets: Readonly<Record<string, string>>) => (Object.keys(secrets).length ? { secrets } : {});

/** Shared by the estimator and the model: the inference half of the params. */
export function inferenceConfigOf(params: ParamMap, inputColumns: readonly Column[]): InferenceConfig | null {
  const scripts = params.get(InferenceParams.inferenceScripts);
  const outputCols = params.get(InferenceParams.inferenceOutputCols);
  const outputTypes = params.get(InferenceParams.inferenceOutputTypes);
  if (!scripts.length && !outputCols.length) return null; // a training-only estimator: no inference half configured
  if (outputCols.length !== outputTypes.length) {
    throw new ConfigError("inferenceOutputTypes", outputTypes, `one type per output column (${outputCols.length}: ${outputCols.join(", ")})`);
  }
  const output = outputCols.map((name, i) => columnOf(name, outputTypes[i]!));
  const servingMode = params.get(InferenceParams.servingMode) ?? (scripts.length ? "script" : "signature");
  if (servingMode === "signature") {
    for (const c of inputColumns) checkSignatureColumn(c, "inferenceSelectedCols");
    for (const c of output) checkSignatureColumn(c, "inferenceOutputTypes");
  }
  return {
    python: { scripts, entry: params.get(InferenceParams.inferenceEntry), hyperParams: params.get(InferenceParams.inferenceHyperParams), env: params.get(InferenceParams.inferenceEnv), ...secretsOf(params.get(InferenceParams.inferenceSecrets)) },
    input: { columns: inputColumns },
    output: { columns: output },
    batchSize: params.get(FeedParams.batchSize),
    ...(servingMode === "signature" ? { servingMode } : {}),
  };
}

/** The ONNX signature holds numeric tensors of one width per column: a string or variable-length column cannot cross it. */
function checkSignatureColumn(column: Column, setting: string): void {
  if (!SIGNATURE_DTYPES.includes(column.dtype) || column.shape === "var") {
    throw new ConfigError(setting, { column: column.name, dtype: column.dtype, shape: column.shape }, `numeric columns of a fixed width (${SIGNATURE_DTYPES.join(", ")}; scalar or [n]) in signature serving mode; serve this model in "script" mode (setServingMode("script")) or change column ${column.name}`);
  }
}

const SIGNATURE_DTYPES: readonly string[] = ["FLOAT32", "FLOAT64", "INT32", "INT64"];

/**
 * The watch settings of an estimator's params (deadline, restarts, hang watchdog), as the job watch
 * takes them: a fit triggered on AWS is watched as the same estimator's fit is locally, defaults
 * included.
 */
export function watchOverridesOf(params: ParamMap): { readonly timeoutMs: number; readonly maxWorkerRestarts: number; readonly progressTimeoutMs: number } {
  return { timeoutMs: params.get(ModelParams.timeoutMs), maxWorkerRestarts: params.get(ModelParams.maxWorkerRestarts), progressTimeoutMs: params.get(ModelParams.progressTimeoutMs) };
}

/**
 * What `TFEstimator.fit(table)` asks the coordinator for, with the job's artifacts in `bucket`.
 *
 * @example
 * const request = trainRequestOf(new TFEstimator().setTrainEntry("train").params, Table.fromS3("s3://b/training/day1.jsonl", schema), "artifacts");
 */
export function trainRequestOf(p: ParamMap, table: Table, bucket: string): JobRequest {
  const trainCols = table.select(p.get(TrainParams.trainSelectedCols).length ? p.get(TrainParams.trainSelectedCols) : table.schema.map((c) => c.name));
  const inferenceSelected = p.get(InferenceParams.inferenceSelectedCols);
  const inference = inferenceConfigOf(p, inferenceSelected.length ? table.select(inferenceSelected) : trainCols);
  return {
    mode: "train",
    cluster: { worker: p.get(ClusterParams.workerNum), ps: p.get(ClusterParams.psNum) },
    ...(p.get(ClusterParams.workerCapacity) ? { workerCapacity: p.get(ClusterParams.workerCapacity)! } : {}),
    python: { scripts: p.get(TrainParams.trainScripts), entry: p.get(TrainParams.trainEntry), hyperParams: p.get(TrainParams.trainHyperParams), env: p.get(TrainParams.trainEnv), ...secretsOf(p.get(TrainParams.trainSecrets)) },
    input: { columns: trainCols },
    output: null,
    batchSize: p.get(FeedParams.batchSize),
    remainder: remainderPolicy(p.get(FeedParams.remainder)),
    source: table.source,
    bucket,
    model: { modelId: p.get(ModelParams.modelId), inference },
    initModelUri: p.get(ModelParams.initModelUri),
    checkpoint: { everySteps: p.get(ModelParams.checkpointEverySteps), everySeconds: 0 },
    export: { everySteps: p.get(ModelParams.exportEverySteps), everySeconds: p.get(ModelParams.exportEverySeconds) },
  };
}
