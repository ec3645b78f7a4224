/**
 * `TFModel`: a fitted model. It is metadata only (where the weights are and how to run them);
 * `transform(table)` runs the model's inference entry on workers and returns typed rows.
 */
import type { Row } from "../codec/schema.ts";
import { ConfigError } from "../errors.ts";

import type { RunOptions } from "../runtime/job-runtime.ts";
import type { JobRuntime } from "../runtime/job-runtime.ts";
import { defaultRuntime } from "../runtime/local-runtime.ts";
import { checkModelMetadata, type ModelMetadata } from "../protocol/model-metadata.ts";
import { getJson } from "../storage/objects.ts";
import { parseS3Uri } from "../protocol/names.ts";
import { Table } from "./table.ts";
import { FeedParams, ModelParams, type RemainderParam } from "./tf-params.ts";
import { readStageMetadata, saveStageMetadata, StageFormatError, type PersistOptions } from "./persistence.ts";
import type { Model } from "./stage.ts";

import { ROW_ID, rowId } from "../protocol/feed-messages.ts";
import { remainderPolicy } from "./train-request.ts";

export interface TransformSettings {
  readonly inferenceWorkerNum: number;
  readonly remainder: RemainderParam;
  readonly timeoutMs: number;
}

const DEFAULT_TRANSFORM: TransformSettings = { inferenceWorkerNum: 1, remainder: { flushAfterMs: 50 }, timeoutMs: 30 * 60_000 };

/**
 * A fitted TensorFlow model, as {@link TFEstimator.fit} returns it: metadata only (where the
 * weights are and how to run them). `transform(table)` runs the inference entry on workers and
 * returns the input rows with the output columns added; `save` and `load` keep it between programs.
 *
 * @example
 * const model = await TFModel.load("s3://my-bucket/models/digits/"); // a folder model.save wrote
 * const scored = await model.transform(Table.fromRows(schemaOf({ pixels: "FLOAT32[64]" }), [{ pixels: new Array(64).fill(0) }]));
 * console.log(scored.rows[0]!.digit);
 */
export class TFModel implements Model {
  readonly stageClass = "TFModel";
  private runtime: JobRuntime | undefined;

  constructor(
    readonly metadata: ModelMetadata,
    readonly settings: TransformSettings = DEFAULT_TRANSFORM,
  ) {}

  withRuntime(runtime: JobRuntime): this {
    this.runtime = runtime;
    return this;
  }

  /** Where this version's metadata object is. */
  get metadataUri(): string {
    return `${this.metadata.artifactUri.replace(/artifact\/$/, "")}metadata.json`;
  }

  /**
   * Saves the model under the folder `uri`: stage metadata whose artifact `model` is this
   * version's metadata object in S3 (the weights stay where the fit put them).
   */
  async save(uri: string, options: PersistOptions = {}): Promise<void> {
    await saveStageMetadata(uri, { stageClass: this.stageClass, params: { ...this.settings }, artifacts: { model: this.metadataUri } }, { runtime: options.runtime ?? this.runtime });
  }

  /**
   * The model at `uri`: a model version's `metadata.json` (s3://), or a folder a `save` wrote.
   *
   * @example
   * const model = await TFModel.load("s3://bucket/models/digits/versions/<version>/metadata.json");
   */
  static async load(uri: string, runtime?: JobRuntime): Promise<TFModel> {
    if (!uri.endsWith(".json")) return TFModel.loadSaved(uri, runtime);
    const rt = runtime ?? (await defaultRuntime());
    const found = await getJson<unknown>(rt.deps.clients, parseS3Uri(uri, "model uri"));
    if (!found) throw new ConfigError("model uri", uri, "the URI of an existing metadata.json");
    return new TFModel(checkModelMetadata(found.value, uri)).withRuntime(rt);
  }

  private static async loadSaved(uri: string, runtime?: JobRuntime): Promise<TFModel> {
    const options = runtime ? { runtime } : {};
    const saved = await readStageMetadata(uri, options, ["TFModel"]);
    let settings: TransformSettings;
    try {
      settings = {
        inferenceWorkerNum: FeedParams.inferenceWorkerNum.validate(saved.params.inferenceWorkerNum),
        remainder: FeedParams.remainder.validate(saved.params.remainder),
        timeoutMs: ModelParams.timeoutMs.validate(saved.params.timeoutMs),
      };
    } catch (e) {
      throw new StageFormatError(uri, `its params are not valid for this release: ${(e as Error).message}`);
    }
    const at = saved.artifacts.model;
    if (!at?.endsWith(".json")) throw new StageFormatError(uri, `artifact model is ${JSON.stringify(at)}, not the URI of a model metadata.json; the file is damaged`);
    const loaded = await TFModel.load(at, runtime);
    return new TFModel(loaded.metadata, settings).withRuntime(loaded.runtime!);
  }

  /**
   * Runs inference over `table`: the output rows are the input rows (in order) with the output
   * columns added, typed by the model's output schema.
   *
   * @example
   * const scored = await model.transform(Table.fromRows(schema, rows));
   * console.log(scored.rows[0]); // { pixels: [...], label: 3n, digit: 3n, score: 0.98 }
   */
  async transform(table: Table, options: RunOptions = {}): Promise<Table> {
    const inference = this.metadata.inference;
    if (!inference) throw new ConfigError("inferenceScripts", [], "inference scripts and output columns set on the estimator before fit, to transform with its model");
    if (table.source.kind !== "rows") throw new ConfigError("table", table.source.kind, "an in-memory table for transform (S3 and queue tables: use the inference function)");
    const rows = table.rows;
    const runtime = this.runtime ?? (await defaultRuntime());
    const rowsPerShard = 2_000;
    const outcome = await runtime.runJob({
        mode: "inference",
        cluster: { worker: this.settings.inferenceWorkerNum, ps: 0 },
        python: inference.python,
        input: { columns: table.select(inference.input.columns.map((c) => c.name)) },
        output: inference.output,
        batchSize: inference.batchSize,
        remainder: remainderPolicy(this.settings.remainder),
        source: table.source,
        bucket: runtime.deps.config.bucket,
        modelArtifactUri: this.metadata.artifactUri,
        rowsPerShard,
      },
      { timeoutMs: this.settings.timeoutMs, ...options },
    );
    if (outcome.mode !== "inference") throw new Error("unreachable: an inference job returned a training outcome");
    const out: Row[] = rows.map((row, i) => {
      const produced = outcome.rows.get(rowId(Math.floor(i / rowsPerShard), i % rowsPerShard));
      if (!produced) throw new ConfigError("inference output", `row ${i}`, "one output row per input row; the inference function skipped it");
      const { [ROW_ID]: _id, ...outputs } = produced;
      return { ...row, ...outputs };
    });
    return Table.fromRows([...table.schema, ...inference.output.columns.filter((c) => !table.schema.some((s) => s.name === c.name))], out);
  }
}
