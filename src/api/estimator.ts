/**
 * `TFEstimator`: a pipeline stage whose `fit(table)` trains the user's TensorFlow code on
 * workers fed through SQS and returns a {@link TFModel}, which holds only metadata.
 */
import { ConfigError } from "../errors.ts";

import type { RunOptions } from "../runtime/job-runtime.ts";
import type { JobRuntime } from "../runtime/job-runtime.ts";
import { defaultRuntime } from "../runtime/local-runtime.ts";
import { ParamMap } from "./params.ts";
import type { Table } from "./table.ts";
import { ClusterParams, ESTIMATOR_PARAMS, FeedParams, InferenceParams, ModelParams, TrainParams, type RemainderParam } from "./tf-params.ts";
import { trainRequestOf } from "./train-request.ts";
import { TFModel } from "./model.ts";
import { StreamingTFModel } from "./streaming-model.ts";
import { readStageMetadata, saveStageMetadata, StageFormatError, type PersistOptions } from "./persistence.ts";
import type { Estimator } from "./stage.ts";
import type { WorkerCapacity } from "../protocol/spec.ts";
import { type JobRequest } from "../protocol/start-request.ts";


/**
 * A pipeline stage that trains the user's TensorFlow code: `fit(table)` runs the train entry on
 * `workerNum` workers fed through SQS, and returns the {@link TFModel} of the exported weights
 * (a {@link StreamingTFModel} for a queue table, at its first version). The inference settings
 * are what the model's `transform` runs.
 *
 * @example
 * const estimator = new TFEstimator()
 *   .setWorkerNum(2)
 *   .setTrainScripts(["model.py"]).setTrainEntry("train").setTrainHyperParams({ epochs: 20 })
 *   .setTrainSelectedCols(["pixels", "label"]).setBatchSize(32)
 *   .setInferenceScripts(["model.py"]).setInferenceEntry("predict").setInferenceSelectedCols(["pixels"])
 *   .setInferenceOutputCols(["digit"]).setInferenceOutputTypes(["INT64"])
 *   .setModelId("digits");
 * const model = await estimator.fit(Table.fromS3("s3://my-data/digits/train/", schemaOf({ pixels: "FLOAT32[64]", label: "INT64" })));
 */
export class TFEstimator implements Estimator<TFModel> {
  readonly stageClass = "TFEstimator";
  readonly params = new ParamMap(ESTIMATOR_PARAMS);
  private runtime: JobRuntime | undefined;

  /** Runs jobs on `runtime` instead of the embedded local default. */
  withRuntime(runtime: JobRuntime): this {
    this.runtime = runtime;
    return this;
  }

  setWorkerNum(n: number): this { this.params.set(ClusterParams.workerNum, n); return this; }
  setPsNum(n: number): this { this.params.set(ClusterParams.psNum, n); return this; }
  /** `"fargate-spot"`: the workers of a deployed stack run on Fargate Spot; `null`: the stack's default. */
  setWorkerCapacity(capacity: WorkerCapacity | null): this { this.params.set(ClusterParams.workerCapacity, capacity); return this; }
  setTrainScripts(scripts: readonly string[]): this { this.params.set(TrainParams.trainScripts, scripts); return this; }
  setTrainEntry(entry: string): this { this.params.set(TrainParams.trainEntry, entry); return this; }
  setTrainHyperParams(hp: Record<string, unknown>): this { this.params.set(TrainParams.trainHyperParams, hp); return this; }
  setTrainEnv(env: Record<string, string>): this { this.params.set(TrainParams.trainEnv, env); return this; }
  /** Environment variables the workers read from Secrets Manager: `{ API_TOKEN: "arn:aws:secretsmanager:...:secret:serverless-tf/token-AbCdEf" }`. */
  setTrainSecrets(secrets: Record<string, string>): this { this.params.set(TrainParams.trainSecrets, secrets); return this; }
  setTrainSelectedCols(cols: readonly string[]): this { this.params.set(TrainParams.trainSelectedCols, cols); return this; }
  setInferenceScripts(scripts: readonly string[]): this { this.params.set(InferenceParams.inferenceScripts, scripts); return this; }
  setInferenceEntry(entry: string): this { this.params.set(InferenceParams.inferenceEntry, entry); return this; }
  setInferenceHyperParams(hp: Record<string, unknown>): this { this.params.set(InferenceParams.inferenceHyperParams, hp); return this; }
  setInferenceEnv(env: Record<string, string>): this { this.params.set(InferenceParams.inferenceEnv, env); return this; }
  setInferenceSecrets(secrets: Record<string, string>): this { this.params.set(InferenceParams.inferenceSecrets, secrets); return this; }
  setInferenceSelectedCols(cols: readonly string[]): this { this.params.set(InferenceParams.inferenceSelectedCols, cols); return this; }
  setInferenceOutputCols(cols: readonly string[]): this { this.params.set(InferenceParams.inferenceOutputCols, cols); return this; }
  setInferenceOutputTypes(types: readonly string[]): this { this.params.set(InferenceParams.inferenceOutputTypes, types); return this; }
  /** `"signature"`: the chief also exports the serving signature as ONNX, and a served model runs it in the Node function (no Python). */
  setServingMode(mode: "script" | "signature" | null): this { this.params.set(InferenceParams.servingMode, mode); return this; }
  setBatchSize(n: number): this { this.params.set(FeedParams.batchSize, n); return this; }
  setRemainder(r: RemainderParam): this { this.params.set(FeedParams.remainder, r); return this; }
  setInferenceWorkerNum(n: number): this { this.params.set(FeedParams.inferenceWorkerNum, n); return this; }
  setModelId(id: string): this { this.params.set(ModelParams.modelId, id); return this; }
  setInitModelUri(uri: string | null): this { this.params.set(ModelParams.initModelUri, uri); return this; }
  setCheckpointEverySteps(n: number): this { this.params.set(ModelParams.checkpointEverySteps, n); return this; }
  setTimeoutMs(ms: number): this { this.params.set(ModelParams.timeoutMs, ms); return this; }
  setExportEverySteps(n: number): this { this.params.set(ModelParams.exportEverySteps, n); return this; }
  setExportEverySeconds(n: number): this { this.params.set(ModelParams.exportEverySeconds, n); return this; }
  setMaxWorkerRestarts(n: number): this { this.params.set(ModelParams.maxWorkerRestarts, n); return this; }
  setProgressTimeoutMs(ms: number): this { this.params.set(ModelParams.progressTimeoutMs, ms); return this; }

  /** Saves the params (not a model: fit first and save the TFModel for that) under the folder `uri`. */
  async save(uri: string, options: PersistOptions = {}): Promise<void> {
    await saveStageMetadata(uri, { stageClass: this.stageClass, params: this.params.toJSON() }, { runtime: options.runtime ?? this.runtime });
  }

  /**
   * The estimator saved under `uri`.
   *
   * @example
   * const estimator = await TFEstimator.load("s3://bucket/estimators/digits/");
   */
  static async load(uri: string, options: PersistOptions = {}): Promise<TFEstimator> {
    const metadata = await readStageMetadata(uri, options, ["TFEstimator"]);
    const estimator = new TFEstimator();
    try {
      estimator.params.loadJSON(metadata.params, "TFEstimator");
    } catch (e) {
      throw new StageFormatError(uri, `its params are not valid for this release: ${(e as Error).message}`);
    }
    return options.runtime ? estimator.withRuntime(options.runtime) : estimator;
  }

  /**
   * The coordinator request `fit(table)` makes, with its artifacts in `bucket`: what a runtime
   * without a watcher (the coordinator function, for a fit trigger) starts directly.
   *
   * @example
   * const request = estimator.trainRequest(Table.fromS3("s3://bucket/training/day1.jsonl", schema), "artifacts");
   */
  trainRequest(table: Table, bucket: string): JobRequest {
    return trainRequestOf(this.params, table, bucket);
  }

  /**
   * Trains on `table` and returns the model: metadata pointing at the weights in S3.
   *
   * @example
   * const model = await new TFEstimator()
   *   .setWorkerNum(2).setTrainScripts(["demo/digits_model.py"]).setTrainEntry("train")
   *   .setTrainSelectedCols(["pixels", "label"]).setBatchSize(32)
   *   .fit(Table.fromRows(schemaOf({ pixels: "FLOAT32[64]", label: "INT64" }), rows));
   */
  async fit(table: Table, options: RunOptions = {}): Promise<TFModel> {
    const p = this.params;
    const runtime = this.runtime ?? (await defaultRuntime());
    const request = this.trainRequest(table, runtime.deps.config.bucket);
    if (!table.bounded) {
      // Unbounded: returns at the first published version, while training goes on (model.job.stop()).
      const { job, first } = await runtime.startStreamingJob(request, { timeoutMs: p.get(ModelParams.timeoutMs), ...options });
      return new StreamingTFModel(first, { inferenceWorkerNum: p.get(FeedParams.inferenceWorkerNum), remainder: p.get(FeedParams.remainder), timeoutMs: p.get(ModelParams.timeoutMs) }, job, runtime);
    }
    const outcome = await runtime.runJob(request, {
      timeoutMs: p.get(ModelParams.timeoutMs),
      maxWorkerRestarts: p.get(ModelParams.maxWorkerRestarts),
      progressTimeoutMs: p.get(ModelParams.progressTimeoutMs),
      ...options,
    });
    if (outcome.mode !== "train" || !outcome.model) throw new ConfigError("trainEntry", p.get(TrainParams.trainEntry), "a function that calls ctx.export(model)");
    return new TFModel(outcome.model, { inferenceWorkerNum: p.get(FeedParams.inferenceWorkerNum), remainder: p.get(FeedParams.remainder), timeoutMs: p.get(ModelParams.timeoutMs) }).withRuntime(runtime);
  }
}
