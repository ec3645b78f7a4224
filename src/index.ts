/**
 * serverless-tf: distributed TensorFlow training and inference as ML-pipeline stages on AWS.
 *
 * @module serverless-tf
 */
export { TFEstimator } from "./api/estimator.ts";
export { TFModel } from "./api/model.ts";
export { Pipeline, PipelineModel, loadStage } from "./api/pipeline.ts";
export type { Stage, Estimator, Model, Transformer } from "./api/stage.ts";
export { StandardScaler, StandardScalerModel } from "./api/standard-scaler.ts";
export { ArgMax, ColumnSelector } from "./api/transformers.ts";
export { StageFormatError, StageVersionError } from "./api/persistence.ts";
export { Table, schemaOf, columnOf } from "./api/table.ts";
export type { Column, Row } from "./codec/schema.ts";
export { LocalRuntime, defaultRuntime, type LocalRuntimeOptions, type ServeOptions, type ServedModel } from "./runtime/local-runtime.ts";
export type { JobRuntime } from "./runtime/job-runtime.ts";
export { StackRuntime, JobRejectedError, StackFunctionError, type StackOutputs, type StackRuntimeOptions, type StackServedModel, type StackServeOptions } from "./runtime/stack-runtime.ts";
export type { JobOutcome, RunOptions, StreamingJob } from "./runtime/job-runtime.ts";
export { StreamingTFModel } from "./api/streaming-model.ts";
export { InferenceClient, ResultTimeoutError } from "./api/inference-client.ts";
export { startFitTriggers } from "./api/fit-triggers.ts";
export type { ModelMetadata, OnnxSignature } from "./protocol/model-metadata.ts";
export type { ServingMode } from "./protocol/spec.ts";
export { parseJsonLines as rowsFromJsonLines } from "./codec/table-rows.ts";
export { SchemaError, DecodeError } from "./codec/errors.ts";
export { JobConflictError } from "./registry/errors.ts";
/** The Python that runs workers and the engine (`SERVERLESS_TF_PYTHON`, else the checkout's `.venv`). */
export { projectPython as workerPython } from "./workers/paths.ts";
export { JobFailedError, JobTimeoutError, JobHangError, WorkerLostError } from "./jobs/watch.ts";
export { ServerlessTfError, ConfigError } from "./errors.ts";
export { readJobOutput } from "./jobs/output-store.ts";
