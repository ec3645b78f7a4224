/**
 * What `fit` returns for an unbounded table: a {@link TFModel} (the first published version)
 * that also holds the running job, and can resolve the newest version while training goes on.
 */
import { readLatest } from "../storage/latest-pointer.ts";
import type { JobRuntime } from "../runtime/job-runtime.ts";
import type { StreamingJob } from "../runtime/job-runtime.ts";
import type { ModelMetadata } from "../protocol/model-metadata.ts";
import { TFModel, type TransformSettings } from "./model.ts";

/**
 * What `fit` returns for a queue table ({@link Table.fromQueue}): the model at its first
 * published version, with the training job still running (`job.stop()` ends it after one last
 * export) and `latest()` for the newest version since.
 *
 * @example
 * const model = (await estimator.fit(Table.fromQueue(queueUrl, schema))) as StreamingTFModel;
 * const newer = await model.latest(); // a later version, as training goes on
 * await model.job.stop();
 */
export class StreamingTFModel extends TFModel {
  constructor(
    metadata: ModelMetadata,
    settings: TransformSettings,
    /** The training job: `await model.job.stop()` ends it after a last export. */
    readonly job: StreamingJob,
    private readonly jobRuntime: JobRuntime,
  ) {
    super(metadata, settings);
    this.withRuntime(jobRuntime);
  }

  /**
   * The newest published version of this model (`latest.json`), as a model of its own.
   *
   * @example
   * const model = (await estimator.fit(Table.fromQueue(url, schema))) as StreamingTFModel; // at the first version
   * const newer = await model.latest(); // a later version, as training goes on
   * await model.job.stop();
   */
  async latest(): Promise<TFModel> {
    const runtime = this.jobRuntime;
    const pointer = await readLatest(runtime.deps.clients, runtime.deps.config.bucket, this.metadata.modelId);
    if (!pointer || pointer.version === this.metadata.version) return this;
    return TFModel.load(pointer.metadataUri, runtime);
  }
}
