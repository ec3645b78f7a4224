/**
 * The model version an inference container serves: `models/<modelId>/latest.json`, re-checked
 * at most every `recheckMs` with a HeadObject (ETag only, no body), and read again only when the
 * ETag moved. With the default 5 s, a new version is served within 5 s of its publication, for
 * one HEAD request per 5 s per container.
 */
import type { AwsClients } from "../../src/aws/clients.ts";
import { ServerlessTfError } from "../../src/errors.ts";
import { modelKeys, parseS3Uri } from "../../src/protocol/names.ts";
import { checkModelMetadata, type LatestPointer, type ModelMetadata } from "../../src/protocol/model-metadata.ts";
import { getJson, headObject } from "../../src/storage/objects.ts";

export const DEFAULT_RECHECK_MS = 5_000;

/** No version of the model is published yet: retry later (the rows stay on the input queue). */
export class ModelNotPublishedError extends ServerlessTfError {}

export class LatestModel {
  private cached: { etag: string; metadata: ModelMetadata } | undefined;
  private checkedAt = -Infinity;

  constructor(
    private readonly clients: AwsClients,
    readonly bucket: string,
    readonly modelId: string,
    readonly recheckMs: number = DEFAULT_RECHECK_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The metadata of the version to serve now. */
  async current(): Promise<ModelMetadata> {
    const now = this.now();
    if (this.cached && now - this.checkedAt < this.recheckMs) return this.cached.metadata;
    const at = { bucket: this.bucket, key: modelKeys.latest(this.modelId) };
    const head = await headObject(this.clients, at);
    if (!head) throw new ModelNotPublishedError(`model ${this.modelId} has no published version: nothing at s3://${at.bucket}/${at.key}. Fit it first (estimator.setModelId("${this.modelId}")).`);
    if (!this.cached || head.etag !== this.cached.etag) {
      const pointer = await getJson<LatestPointer>(this.clients, at);
      if (!pointer) throw new ModelNotPublishedError(`s3://${at.bucket}/${at.key} disappeared while it was read`);
      const found = await getJson<unknown>(this.clients, parseS3Uri(pointer.value.metadataUri, "latest.json metadataUri"));
      if (!found) throw new ModelNotPublishedError(`latest.json of ${this.modelId} points at ${pointer.value.metadataUri}, which does not exist`);
      this.cached = { etag: pointer.etag, metadata: checkModelMetadata(found.value, pointer.value.metadataUri) };
    }
    this.checkedAt = now;
    return this.cached.metadata;
  }
}
