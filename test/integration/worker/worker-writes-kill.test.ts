/**
 * Atomic exports and checkpoints under a real crash: a training chief (a Python process running
 * the worker's own Context, test/integration/scripts/chief_writes.py) is SIGKILLed between its
 * writes through a holding proxy (test/helpers/holding-proxy.ts). The version and the checkpoint
 * in force stay what they were, and the restarted writer completes or resumes from them.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { GetObjectTaggingCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { publishExport } from "../../../functions/checkpoint/publish.ts";
import { readLatest } from "../../../src/storage/latest-pointer.ts";
import { modelKeys, parseS3Uri } from "../../../src/protocol/names.ts";
import { projectPython } from "../../../src/workers/paths.ts";
import { LIFECYCLE } from "../../../src/resources/definitions.ts";
import { dynamoDbCall, killWriterAtWrite, s3PutEndingWith, startChild, type HoldWhen } from "../../helpers/holding-proxy.ts";
import { modelStoreFixture } from "../../helpers/model-store.ts";
import { jobSpec } from "../../helpers/job-spec.ts";

const emulator = process.env.AWS_ENDPOINT_URL ?? assert.fail("AWS_ENDPOINT_URL is not set: run this file through `npm test`");
const { clients, registry, bucket, jobs } = modelStoreFixture("chief-kill");
const modelId = `ck-${randomUUID().slice(0, 6)}`;
const script = fileURLToPath(new URL("../scripts/chief_writes.py", import.meta.url));
const env = { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2", PYTHONUNBUFFERED: "1" };
/** Python with TensorFlow takes seconds to reach its first write. */
const WRITER_WAIT_MS = 120_000;

/** A bounded training job (RUNNING) exporting to version `version` of the model, with a short lease. */
async function trainingJob(version: string): Promise<{ jobId: string; versionPrefix: string }> {
  const jobId = `ck-${randomUUID().slice(0, 8)}`;
  jobs.push(jobId);
  const versionPrefix = modelKeys.version(modelId, version);
  const spec = jobSpec({
    jobId,
    python: { scripts: [`s3://${bucket}/jobs/${jobId}/code/train.py`], entry: "train", hyperParams: {}, env: {} },
    input: { columns: [{ name: "x", dtype: "FLOAT32", shape: { fixed: 3 } }] },
    queues: { feed: { "worker-0": `${emulator}/000000000000/stf-${jobId}-feed-worker-0` }, output: "", dlq: "" },
    bucket,
    model: { modelId, version, exportUri: `s3://${bucket}/${versionPrefix}` },
    leaseMs: 2_000,
  });
  await registry.createJob({ jobId, mode: "train", spec });
  await registry.transitionJob(jobId, ["CREATED"], "RUNNING");
  return { jobId, versionPrefix };
}

const chief = (jobId: string, ...action: string[]) => ({ command: projectPython, args: [script, jobId, ...action], env });

/** Runs the chief to completion against the emulator; returns its JSON line. */
async function runChief(jobId: string, ...action: string[]): Promise<Record<string, any>> {
  const { command, args } = chief(jobId, ...action);
  const exit = await startChild(command, args, env).exited;
  assert.equal(exit.code, 0, `chief_writes.py ${action.join(" ")} failed:\n${exit.stderr.slice(-3000)}`);
  return JSON.parse(exit.stdout.trim().split("\n").at(-1)!) as Record<string, any>;
}

async function killChiefAt(jobId: string, holdWhen: HoldWhen, ...action: string[]) {
  const killed = await killWriterAtWrite(emulator, holdWhen, chief(jobId, ...action), WRITER_WAIT_MS);
  // (Requests held after it may be the lease keeper's heartbeats, which go on in their own thread.)
  assert.equal(killed.exit.signal, "SIGKILL", `the chief was not killed at the write: ${killed.exit.stderr.slice(-2000)}`);
  return killed;
}

/** Key -> ETag of every object under `prefix`. */
async function objectsUnder(prefix: string): Promise<Map<string, string>> {
  const out = await clients.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return new Map((out.Contents ?? []).map((o) => [o.Key!, o.ETag!]));
}

const latestVersion = async () => (await readLatest(clients, bucket, modelId))?.version;
const checkpointPrefix = (uri: string) => parseS3Uri(uri, "checkpoint uri").key;

describe("a training chief killed between its writes", () => {
  it("leaves no announced export when killed before export.json; the previous version stays in force and a re-run publishes", { timeout: 600_000 }, async () => {
    // Arrange: version 0001 exported and published cleanly.
    const first = await trainingJob("0001");
    await runChief(first.jobId, "export");
    await publishExport({ clients, registry }, { bucket, key: `${first.versionPrefix}export.json` });
    const second = await trainingJob("0002");

    // Act: the chief exporting 0002 is killed while its export.json is held.
    await killChiefAt(second.jobId, s3PutEndingWith(`${second.versionPrefix}export.json`), "export");

    // Assert: the SavedModel files are there, but nothing announces them, and readers keep 0001.
    const left = await objectsUnder(second.versionPrefix);
    assert.ok([...left.keys()].some((k) => k.endsWith("saved_model.pb")), `the artifact was uploaded before the kill: ${[...left.keys()].join(", ")}`);
    assert.ok(![...left.keys()].some((k) => k.endsWith("export.json") || k.endsWith("metadata.json")), "no manifest, no metadata");
    assert.equal(await latestVersion(), "0001");

    // Act: the restarted chief exports again; the checkpoint stage publishes its manifest.
    await runChief(second.jobId, "export");
    const published = await publishExport({ clients, registry }, { bucket, key: `${second.versionPrefix}export.json` });

    // Assert
    assert.equal(published.version, "0002");
    assert.equal(await latestVersion(), "0002");
  });

  it("keeps the checkpoint in force when killed mid-upload or before publishing, and a restart resumes from it", { timeout: 600_000 }, async () => {
    // Arrange: a checkpoint at step 10, complete and published.
    const { jobId } = await trainingJob("0003");
    const saved = await runChief(jobId, "checkpoint", "10");
    const inForce = await registry.latestCheckpoint(jobId);
    const inForceFiles = await objectsUnder(checkpointPrefix(saved.checkpoint as string));

    // Act: a restarted attempt reaching step 10 again is killed mid-upload (its second file held),
    // then another is killed while publishing step 30.
    let step10Puts = 0;
    await killChiefAt(jobId, (r) => r.method === "PUT" && r.path.includes("/step-000000000010-") && ++step10Puts === 2, "checkpoint", "10");
    const publishing = await killChiefAt(jobId, dynamoDbCall("TransactWriteItems", "checkpoint#000000000030"), "checkpoint", "30");

    // Assert: step 10 is still the checkpoint in force, its files untouched by the second writer
    // of step 10; step 30's files are all uploaded, under their own prefix, and unannounced.
    const latest = await registry.latestCheckpoint(jobId);
    assert.deepEqual([latest?.step, latest?.uri, latest?.createdAt], [10, inForce?.uri, inForce?.createdAt]);
    assert.deepEqual(await objectsUnder(checkpointPrefix(inForce!.uri)), inForceFiles);
    const all = [...(await objectsUnder(`jobs/${jobId}/checkpoints/`)).keys()];
    const step30 = all.filter((k) => k.includes("/step-000000000030-"));
    assert.ok(step30.some((k) => k.endsWith("weights.index")), `step 30 was uploaded before the kill: ${all.join(", ")}`);
    const secondStep10 = all.filter((k) => k.includes("/step-000000000010-") && !inForceFiles.has(k));
    assert.equal(secondStep10.length, 1, `the second writer of step 10 died after its first file, beside the first writer's: ${all.join(", ")}`);
    assert.equal(step30.length, inForceFiles.size, "every file of step 30 was uploaded");
    assert.match(publishing.held.body.toString(), /"ConditionCheck"/, "the held write is the publication under the lease");

    // Act: the restarted worker restores.
    const restored = await runChief(jobId, "restore");

    // Assert: it resumes from step 10 with exactly the weights saved then.
    assert.equal(restored.restored, 10);
    assert.equal(restored.checksum, saved.checksum);
    const tags = await Promise.all([...inForceFiles.keys()].map(async (Key) => (await clients.s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key }))).TagSet));
    assert.deepEqual(tags, [...inForceFiles.keys()].map(() => [{ Key: LIFECYCLE.tagKey, Value: "checkpoint" }]), "the lifecycle rule for checkpoints acts on this tag");
  });
});
