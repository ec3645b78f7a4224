/** serverless-tf: distributed TensorFlow training and inference as ML-pipeline stages on AWS. */
export { TFEstimator } from "./api/estimator.ts";
export { TFModel } from "./api/model.ts";
export { Pipeline, PipelineModel, loadStage } from "./api/pipeline.ts";
export type { Stage, Estimator, Model, Transformer } from "./api/stage.ts";
export { StandardScaler, StandardScalerModel } from "./api/standard-scaler.ts";
export { ArgMax, ColumnSelector } from "./api/transformers.ts";
export { StageFormatError, StageVersionError } from "./api/persistence.ts";
export { Table, schemaOf, columnOf } from "./api/table.ts";
export type { Column, Row } from "./codec/schema.ts";
export { LocalRuntime, defaultRuntime } from "./runtime/local-runtime.ts";
export { JobFailedError, JobTimeoutError, JobHangError, WorkerLostError } from "./jobs/watch.ts";
export { ServerlessTfError, ConfigError } from "./errors.ts";
export { readJobOutput } from "./jobs/output-store.ts";
