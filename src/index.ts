/** serverless-tf: distributed TensorFlow training and inference as ML-pipeline stages on AWS. */
export { TFEstimator } from "./api/estimator.ts";
export { TFModel } from "./api/model.ts";
export { Table, schemaOf, columnOf } from "./api/table.ts";
export type { Column, Row } from "./coding/schema.ts";
export { LocalRuntime, defaultRuntime } from "./local/runtime.ts";
export { JobFailedError, JobTimeoutError } from "./jobs/watch.ts";
export { ServerlessTfError, ConfigError } from "./errors.ts";
