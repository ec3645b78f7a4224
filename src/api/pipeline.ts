/**
 * `Pipeline` and `PipelineModel` (the Flink ML contract). `Pipeline.fit(table)` walks its stages
 * in order: an estimator is fitted on the table as it is at that point, and its model (or a
 * plain transformer) transforms the table for the next stage, up to the last estimator, so any
 * number of TF trainings and inferences run in one call, each as its own job. The result is a
 * `PipelineModel`: the fitted chain, whose `transform` runs every stage.
 */
import { ConfigError } from "../errors.ts";
import type { RunOptions } from "../runtime/job-runtime.ts";
import type { JobRuntime } from "../runtime/job-runtime.ts";
import { TFEstimator } from "./estimator.ts";
import { TFModel } from "./model.ts";
import { childUri, readStageMetadata, saveStageMetadata, StageFormatError, type PersistOptions } from "./persistence.ts";
import { isEstimator, isTransformer, type Estimator, type Model, type Stage, type Transformer } from "./stage.ts";
import { StandardScaler, StandardScalerModel } from "./standard-scaler.ts";
import { ArgMax, ColumnSelector } from "./transformers.ts";
import type { Table } from "./table.ts";

type Loader = (uri: string, options: PersistOptions) => Promise<Stage>;

/** Every class `loadStage` knows, by its saved `stageClass` (built on first use: the classes import this module's siblings). */
function loaders(): Readonly<Record<string, Loader>> {
  return {
    TFEstimator: (uri, o) => TFEstimator.load(uri, o),
    TFModel: (uri, o) => TFModel.load(uri, o.runtime),
    StandardScaler: (uri, o) => StandardScaler.load(uri, o),
    StandardScalerModel: (uri, o) => StandardScalerModel.load(uri, o),
    ArgMax: (uri, o) => ArgMax.load(uri, o),
    ColumnSelector: (uri, o) => ColumnSelector.load(uri, o),
    Pipeline: (uri, o) => Pipeline.load(uri, o),
    PipelineModel: (uri, o) => PipelineModel.load(uri, o),
  };
}

/**
 * Loads whatever stage was saved under `uri`, by the class its metadata names.
 *
 * @example
 * const fitted = await loadStage("s3://bucket/pipelines/digits/"); // a PipelineModel
 */
export async function loadStage(uri: string, options: PersistOptions = {}): Promise<Stage> {
  const metadata = await readStageMetadata(uri, options);
  const load = loaders()[metadata.stageClass];
  if (!load) throw new StageFormatError(uri, `its stageClass ${JSON.stringify(metadata.stageClass)} is not one this release knows (${Object.keys(loaders()).join(", ")})`);
  return load(uri, options);
}

const stageFolder = (uri: string, index: number) => childUri(uri, `stages/${String(index).padStart(3, "0")}`);

async function saveChain(uri: string, stageClass: string, stages: readonly Stage[], options: PersistOptions): Promise<void> {
  const artifacts: Record<string, string> = {};
  for (const [i, stage] of stages.entries()) {
    const at = stageFolder(uri, i);
    await stage.save(at, options);
    artifacts[`stage-${i}`] = at;
  }
  await saveStageMetadata(uri, { stageClass, params: { stageCount: stages.length, stageClasses: stages.map((s) => s.stageClass) }, artifacts }, options);
}

async function loadChain(uri: string, stageClass: string, options: PersistOptions): Promise<Stage[]> {
  const metadata = await readStageMetadata(uri, options, [stageClass]);
  const count = metadata.params.stageCount;
  if (!Number.isInteger(count) || (count as number) < 0) throw new StageFormatError(uri, `params.stageCount is ${JSON.stringify(count)}, not a count; the file is damaged`);
  const stages: Stage[] = [];
  for (let i = 0; i < (count as number); i++) {
    const at = metadata.artifacts[`stage-${i}`];
    if (!at) throw new StageFormatError(uri, `artifact stage-${i} is missing for a ${count}-stage ${stageClass}; the file is damaged`);
    stages.push(await loadStage(at, options));
  }
  return stages;
}

/**
 * Stages in order (Flink ML's Pipeline): `fit` fits each estimator on the table as the stages
 * before it left it, and returns the {@link PipelineModel} of the fitted chain.
 *
 * @example
 * const pipeline = new Pipeline([
 *   new StandardScaler().setInputCol("pixels").setOutputCol("pixels"),
 *   classifier, // a TFEstimator whose inference writes "logits" (FLOAT32[10])
 *   new ArgMax().setInputCol("logits").setOutputCol("digit"),
 * ]);
 * const fitted = await pipeline.fit(trainTable);
 * await fitted.save("s3://bucket/pipelines/digits/");
 * const again = await PipelineModel.load("s3://bucket/pipelines/digits/");
 */
export class Pipeline implements Estimator<PipelineModel> {
  readonly stageClass = "Pipeline";
  readonly stages: readonly Stage[];

  constructor(stages: readonly Stage[]) {
    stages.forEach((s, i) => {
      if (!isEstimator(s) && !isTransformer(s)) throw new ConfigError(`pipeline stage ${i}`, s?.stageClass ?? typeof s, "an estimator (fit) or a transformer (transform)");
    });
    this.stages = [...stages];
  }

  private runtime: JobRuntime | undefined;

  /** Runs the jobs of every stage that has any on `runtime`, and saves to S3 through its clients. */
  withRuntime(runtime: JobRuntime): this {
    this.runtime = runtime;
    this.stages.forEach((s) => s.withRuntime?.(runtime));
    return this;
  }

  /** Fits every estimator in order; `options` (progress, timeouts) go to each TF job. */
  async fit(table: Table, options: RunOptions = {}): Promise<PipelineModel> {
    const lastEstimator = this.stages.map(isEstimator).lastIndexOf(true);
    const fitted: Model[] = [];
    let current = table;
    for (const [i, stage] of this.stages.entries()) {
      const model: Transformer = isEstimator(stage) ? await stage.fit(current, options) : (stage as Transformer);
      fitted.push(model);
      // Flink ML's rule: nothing after the last estimator needs this table, so it is not transformed.
      if (i < lastEstimator) current = await model.transform(current, options);
    }
    const model = new PipelineModel(fitted);
    return this.runtime ? model.withRuntime(this.runtime) : model;
  }

  async save(uri: string, options: PersistOptions = {}): Promise<void> {
    await saveChain(uri, this.stageClass, this.stages, { runtime: options.runtime ?? this.runtime });
  }

  static async load(uri: string, options: PersistOptions = {}): Promise<Pipeline> {
    const pipeline = new Pipeline(await loadChain(uri, "Pipeline", options));
    return options.runtime ? pipeline.withRuntime(options.runtime) : pipeline;
  }
}

/**
 * A fitted pipeline, as {@link Pipeline.fit} returns it: `transform` runs every stage in order,
 * each on the previous one's output; saved, it loads back as the same chain.
 *
 * @example
 * const fitted = await PipelineModel.load("s3://bucket/pipelines/digits/", { runtime });
 * const labelled = await fitted.transform(Table.fromRows(schema, rows)); // rows with a "digit" column
 */
export class PipelineModel implements Model {
  readonly stageClass = "PipelineModel";
  readonly stages: readonly Transformer[];

  constructor(stages: readonly Stage[]) {
    stages.forEach((s, i) => {
      if (!isTransformer(s)) throw new ConfigError(`pipeline model stage ${i}`, s?.stageClass ?? typeof s, "a model or transformer (transform)");
    });
    this.stages = [...(stages as Transformer[])];
  }

  private runtime: JobRuntime | undefined;

  withRuntime(runtime: JobRuntime): this {
    this.runtime = runtime;
    this.stages.forEach((s) => s.withRuntime?.(runtime));
    return this;
  }

  /** Runs every stage in order, each on the previous one's output. */
  async transform(table: Table, options: RunOptions = {}): Promise<Table> {
    let current = table;
    for (const stage of this.stages) current = await stage.transform(current, options);
    return current;
  }

  async save(uri: string, options: PersistOptions = {}): Promise<void> {
    await saveChain(uri, this.stageClass, this.stages, { runtime: options.runtime ?? this.runtime });
  }

  static async load(uri: string, options: PersistOptions = {}): Promise<PipelineModel> {
    const model = new PipelineModel(await loadChain(uri, "PipelineModel", options));
    return options.runtime ? model.withRuntime(options.runtime) : model;
  }
}
