/**
 * The stage contract, after Flink ML: an {@link Estimator} `fit`s a table into a {@link Model};
 * a {@link Transformer} (every model is one) `transform`s a table into another. Every stage can
 * `save` itself to a folder (s3:// or local) and be loaded back with `loadStage` or its class's
 * static `load`.
 */
import type { RunOptions } from "../runtime/job-runtime.ts";
import type { JobRuntime } from "../runtime/job-runtime.ts";
import type { PersistOptions } from "./persistence.ts";
import type { Table } from "./table.ts";

export interface Stage {
  /** The name saved as `stageClass`, which `loadStage` maps back to the class. */
  readonly stageClass: string;
  /** Saves the stage under the folder `uri` (`<uri>/metadata.json` plus its artifacts). */
  save(uri: string, options?: PersistOptions): Promise<void>;
  /** Runs this stage's jobs (if any) on `runtime`; stages without jobs ignore it. */
  withRuntime?(runtime: JobRuntime): this;
}

export interface Transformer extends Stage {
  transform(table: Table, options?: RunOptions): Promise<Table>;
}

/** A fitted stage: what an estimator's `fit` returns. */
export type Model = Transformer;

export interface Estimator<M extends Model = Model> extends Stage {
  fit(table: Table, options?: RunOptions): Promise<M>;
}

export function isEstimator(stage: Stage): stage is Estimator {
  return typeof (stage as Partial<Estimator>).fit === "function";
}

export function isTransformer(stage: Stage): stage is Transformer {
  return typeof (stage as Partial<Transformer>).transform === "function";
}
