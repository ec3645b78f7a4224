/**
 * Atomic model versions: a version is visible (metadata.json, then the latest pointer) only when
 * every file of its export is complete. Each crash point of a writer is laid out in S3 as the
 * killed writer would leave it; the previous version must stay in force, and a retry completes.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { IncompleteExportError, RejectedExportError, publishExport, moveLatest } from "../../../functions/checkpoint/publish.ts";
import { readLatest } from "../../../src/storage/latest-pointer.ts";
import { modelKeys } from "../../../src/protocol/names.ts";
import type { ModelMetadata } from "../../../src/protocol/model-metadata.ts";
import { getJson, putJson, putObject } from "../../../src/storage/objects.ts";
import { modelStoreFixture } from "../../helpers/model-store.ts";
import { jobSpec } from "../../helpers/job-spec.ts";

const { clients, registry, bucket, jobs } = modelStoreFixture("publish");
const deps = { clients, registry };
const modelId = `m-${randomUUID().slice(0, 6)}`;

async function trainJobExportingTo(version: string): Promise<{ jobId: string; prefix: string }> {
  const jobId = `pub-${randomUUID().slice(0, 8)}`;
  jobs.push(jobId);
  const prefix = modelKeys.version(modelId, version);
  await registry.createJob({ jobId, mode: "train", spec: jobSpec({ jobId, bucket, model: { modelId, version, exportUri: `s3://${bucket}/${prefix}`, inference: null } }) });
  await registry.transitionJob(jobId, ["CREATED"], "RUNNING");
  return { jobId, prefix };
}

/** What a worker uploads before its manifest: the SavedModel files. */
async function uploadArtifact(prefix: string): Promise<{ key: string; size: number }[]> {
  const files = [
    { key: `${prefix}artifact/saved_model.pb`, body: "graph".repeat(100) },
    { key: `${prefix}artifact/variables/variables.index`, body: "index" },
  ];
  for (const f of files) await putObject(clients, { bucket, key: f.key }, f.body);
  return files.map((f) => ({ key: f.key, size: Buffer.byteLength(f.body) }));
}

const manifest = (jobId: string, files: { key: string; size: number }[]) => ({ jobId, member: "worker-0", step: 10, files, createdAt: Date.now() });
const latestVersion = async () => (await readLatest(clients, bucket, modelId))?.version;

describe("atomic model versions", () => {
  it("publishes a complete export: metadata.json written once, latest moved to it", async () => {
    // Arrange
    const { jobId, prefix } = await trainJobExportingTo("0001");
    const files = await uploadArtifact(prefix);
    await putJson(clients, { bucket, key: `${prefix}export.json` }, manifest(jobId, files));

    // Act
    const published = await publishExport(deps, { bucket, key: `${prefix}export.json` });
    const again = await publishExport(deps, { bucket, key: `${prefix}export.json` }); // a redelivered event

    // Assert
    assert.equal(published.version, "0001");
    assert.deepEqual(again, published, "a second publication changes nothing");
    assert.equal(await latestVersion(), "0001");
    assert.equal((await registry.getJob(jobId))?.modelUri, `s3://${bucket}/${prefix}metadata.json`);
  });

  it("keeps the previous version when the writer died after the files but before its manifest", async () => {
    // Arrange: killed between the upload and export.json: nothing announces the version.
    const { prefix } = await trainJobExportingTo("0002");
    await uploadArtifact(prefix);

    // Act
    const metadata = await getJson(clients, { bucket, key: `${prefix}metadata.json` });

    // Assert
    assert.equal(metadata, undefined);
    assert.equal(await latestVersion(), "0001");
  });

  it("refuses a manifest whose files are missing or short, and keeps the previous version", async () => {
    // Arrange: a manifest that names a file the writer never finished.
    const { jobId, prefix } = await trainJobExportingTo("0003");
    const files = await uploadArtifact(prefix);
    const lying = [...files, { key: `${prefix}artifact/variables/variables.data-00000-of-00001`, size: 4096 }];
    await putJson(clients, { bucket, key: `${prefix}export.json` }, manifest(jobId, lying));

    // Act
    const refused = await publishExport(deps, { bucket, key: `${prefix}export.json` }).then(
      () => assert.fail("an incomplete export was published"),
      (e: unknown) => e,
    );

    // Assert
    assert.ok(refused instanceof IncompleteExportError, String(refused));
    assert.match(refused.message, /variables\.data-00000-of-00001/);
    assert.equal(await getJson(clients, { bucket, key: `${prefix}metadata.json` }), undefined);
    assert.equal(await latestVersion(), "0001");
  });

  it("keeps the previous version when the publisher died between metadata.json and the pointer, and the retry completes it", async () => {
    // Arrange: metadata.json of 0004 is written, the pointer still names 0001.
    const { jobId, prefix } = await trainJobExportingTo("0004");
    const files = await uploadArtifact(prefix);
    await putJson(clients, { bucket, key: `${prefix}export.json` }, manifest(jobId, files));
    const half = { format: "serverless-tf/model", formatVersion: 1, modelId, version: "0004", jobId, createdAt: new Date().toISOString(), artifactUri: `s3://${bucket}/${prefix}artifact/`, step: 10, inference: null };
    await putJson(clients, { bucket, key: `${prefix}metadata.json` }, half, { ifNoneMatch: "*" });
    const inForce = await latestVersion();

    // Act: the event is delivered again (SQS redelivers what the dead publisher did not acknowledge).
    await publishExport(deps, { bucket, key: `${prefix}export.json` });

    // Assert
    assert.equal(inForce, "0001", "until the pointer moves, readers keep the previous version");
    assert.equal(await latestVersion(), "0004");
  });

  it("refuses an export planted under another job's version, one at a version time far ahead, and one of a failed job; latest stays", async () => {
    // Arrange: a streaming job of this model (versions under versionsUri), and what a worker able to write under models/ could plant.
    const jobId = `pub-${randomUUID().slice(0, 8)}`;
    jobs.push(jobId);
    const versionsUri = `s3://${bucket}/${modelKeys.versions(modelId)}`;
    await registry.createJob({ jobId, mode: "train", spec: jobSpec({ jobId, bucket, bounded: false, model: { modelId, version: "0000", exportUri: `${versionsUri}0000/`, versionsUri, inference: null } }) });
    await registry.transitionJob(jobId, ["CREATED"], "RUNNING");
    const planted = async (version: string, job: string) => {
      const prefix = modelKeys.version(modelId, version);
      await putJson(clients, { bucket, key: `${prefix}export.json` }, manifest(job, await uploadArtifact(prefix)));
      return publishExport(deps, { bucket, key: `${prefix}export.json` }).then(
        () => assert.fail(`the export at version ${version} was published`),
        (e: unknown) => e as Error,
      );
    };
    const { jobId: failedJob, prefix: failedPrefix } = await trainJobExportingTo("0005");
    await registry.transitionJob(failedJob, ["RUNNING"], "FAILED", { error: "lost" });
    await putJson(clients, { bucket, key: `${failedPrefix}export.json` }, manifest(failedJob, await uploadArtifact(failedPrefix)));

    // Act
    const zzzz = await planted("zzzz", jobId);
    const otherJobsName = await planted(`${String(Date.now()).padStart(14, "0")}-someone-else`, jobId);
    const future = await planted(`${String(Date.now() + 24 * 3600_000).padStart(14, "0")}-${jobId}`, jobId);
    const ofFailed = await publishExport(deps, { bucket, key: `${failedPrefix}export.json` }).then(() => assert.fail("a failed job's export was published"), (e: unknown) => e as Error);

    // Assert
    for (const e of [zzzz, otherJobsName, future, ofFailed]) assert.ok(e instanceof RejectedExportError, String(e));
    assert.match(zzzz.message, /versions are .*<time>-/);
    assert.match(future.message, /ahead of this host's clock/);
    assert.match(ofFailed.message, /the job is FAILED/);
    assert.equal(await latestVersion(), "0004");
  });

  it("never moves the pointer back to an older version", async () => {
    // Arrange
    const older = (await getJson<ModelMetadata>(clients, { bucket, key: `${modelKeys.version(modelId, "0001")}metadata.json` }))!.value;

    // Act
    const moved = await moveLatest(clients, bucket, older);

    // Assert
    assert.equal(moved, false);
    assert.equal(await latestVersion(), "0004");
  });
});
