/**
 * Atomic model versions under a real crash: a publisher process is SIGKILLed between two of its
 * writes, the previous version stays in force, and the redelivered event completes the new one.
 *
 * publish.test.ts lays out by hand the S3 states a killed writer would leave; here a real writer
 * leaves them. The publisher talks to the emulator through a holding proxy
 * (test/helpers/holding-proxy.ts) that keeps one chosen write from the emulator; the test kills
 * the process while that write hangs, so the write never happened, with no hook in product code.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { before, describe, it } from "node:test";
import { DescribeTableCommand } from "@aws-sdk/client-dynamodb";
import { HeadBucketCommand } from "@aws-sdk/client-s3";
import { awsSettingsFromEnv, createAwsClients, destroyAwsClients } from "../../../src/aws/clients.ts";
import { publishExport } from "../../../functions/checkpoint/publish.ts";
import { readLatest } from "../../../src/storage/latest-pointer.ts";
import { modelKeys, s3Uri, type S3Location } from "../../../src/protocol/names.ts";
import type { ModelMetadata } from "../../../src/protocol/model-metadata.ts";
import { registryTableName } from "../../../src/registry/index.ts";
import { getJson, getObject, putJson, putObject } from "../../../src/storage/objects.ts";
import { dynamoDbCall, killWriterAtWrite, s3PutEndingWith, startChild, startHoldingProxy, type HoldWhen, type ProxiedRequest } from "../../helpers/holding-proxy.ts";
import { modelStoreFixture } from "../../helpers/model-store.ts";
import { jobSpec } from "../../helpers/job-spec.ts";

const emulator = process.env.AWS_ENDPOINT_URL ?? assert.fail("AWS_ENDPOINT_URL is not set: run this file through `npm test -- test/integration/publish-kill.test.ts`");
const { clients, registry, bucket, jobs, ready } = modelStoreFixture("publish-kill"); // straight to the emulator: the state the writer left
const modelId = `mk-${randomUUID().slice(0, 6)}`;
const publisherScript = fileURLToPath(new URL("../scripts/publish-once.ts", import.meta.url));
let clean: ModelMetadata;

/** A training job whose export of `version` is complete: artifact files, then export.json. */
async function completeExport(version: string): Promise<{ jobId: string; prefix: string; manifestAt: S3Location; uri: string }> {
  const jobId = `pk-${randomUUID().slice(0, 8)}`;
  jobs.push(jobId);
  const prefix = modelKeys.version(modelId, version);
  await registry.createJob({ jobId, mode: "train", spec: jobSpec({ jobId, bucket, model: { modelId, version, exportUri: `s3://${bucket}/${prefix}`, inference: null } }) });
  await registry.transitionJob(jobId, ["CREATED"], "RUNNING");
  const files = [
    { key: `${prefix}artifact/saved_model.pb`, body: "graph".repeat(100) },
    { key: `${prefix}artifact/variables/variables.index`, body: "index" },
  ];
  for (const f of files) await putObject(clients, { bucket, key: f.key }, f.body);
  const manifest = { jobId, member: "worker-0", step: 10, files: files.map((f) => ({ key: f.key, size: Buffer.byteLength(f.body) })), createdAt: Date.now() };
  const manifestAt = { bucket, key: `${prefix}export.json` };
  await putJson(clients, manifestAt, manifest);
  return { jobId, prefix, manifestAt, uri: s3Uri(manifestAt) };
}

const publisher = (uri: string) => ({ command: process.execPath, args: ["--import", "tsx", publisherScript, uri], env: process.env });
const killPublisherAt = (uri: string, holdWhen: HoldWhen) => killWriterAtWrite(emulator, holdWhen, publisher(uri));

/** The redelivered event, taken by a fresh publisher talking to the emulator directly. */
async function republish(uri: string): Promise<ModelMetadata> {
  const { command, args, env } = publisher(uri);
  const exit = await startChild(command, args, env).exited;
  assert.equal(exit.code, 0, `the redelivered publication failed:\n${exit.stderr}`);
  return JSON.parse(exit.stdout) as ModelMetadata;
}

const latest = () => readLatest(clients, bucket, modelId);
const metadataOf = async (prefix: string) => (await getJson<ModelMetadata>(clients, { bucket, key: `${prefix}metadata.json` }))?.value;
/** What a clean publication of this export writes: the clean 0001 with this version's own fields. */
const cleanMetadataFor = (version: string, jobId: string, prefix: string, createdAt: string): ModelMetadata => ({ ...clean, version, jobId, artifactUri: `s3://${bucket}/${prefix}artifact/`, createdAt });

before(async () => {
  await ready();
  // The version in force that every crash below must leave in force: 0001, published cleanly.
  clean = await publishExport({ clients, registry }, (await completeExport("0001")).manifestAt);
});

describe("a publisher process killed between its writes", () => {
  it("keeps the previous version when killed before writing metadata.json, and the redelivered event publishes the new one", { timeout: 60_000 }, async () => {
    // Arrange
    const { jobId, prefix, uri } = await completeExport("0002");

    // Act: the publisher is killed while its metadata.json write is held.
    const killed = await killPublisherAt(uri, s3PutEndingWith(`${prefix}metadata.json`));

    // Assert: it died at the write, which never reached S3, and readers still get 0001.
    assert.equal(killed.exit.signal, "SIGKILL", `the publisher was not killed at the write: ${JSON.stringify(killed.exit)}`);
    assert.equal(killed.held.headers["if-none-match"], "*", "the held write is the write-once of metadata.json");
    assert.ok(killed.forwarded > 0, "the publisher's reads went through the proxy");
    assert.equal(killed.heldAfter, 0);
    assert.equal(await metadataOf(prefix), undefined);
    assert.equal((await latest())?.version, "0001");

    // Act: SQS redelivers the event the dead publisher never acknowledged.
    const republished = await republish(uri);

    // Assert
    const stored = await metadataOf(prefix);
    assert.deepEqual(stored, cleanMetadataFor("0002", jobId, prefix, stored!.createdAt));
    assert.deepEqual(republished, stored);
    assert.equal((await latest())?.version, "0002");
    assert.equal((await registry.getJob(jobId))?.modelUri, `s3://${bucket}/${prefix}metadata.json`);
  });

  it("keeps the previous version when killed between metadata.json and the pointer, and the redelivered event moves the pointer", { timeout: 60_000 }, async () => {
    // Arrange
    const { jobId, prefix, uri } = await completeExport("0003");
    const pointerEtag = (await getObject(clients, { bucket, key: modelKeys.latest(modelId) }))?.etag;

    // Act: the publisher is killed while its latest.json write is held.
    const killed = await killPublisherAt(uri, s3PutEndingWith(modelKeys.latest(modelId)));

    // Assert: metadata.json of 0003 is written, but the pointer did not move.
    assert.equal(killed.exit.signal, "SIGKILL", `the publisher was not killed at the write: ${JSON.stringify(killed.exit)}`);
    assert.equal(killed.held.headers["if-match"], pointerEtag, "the held write is the conditional move of the pointer it read");
    assert.equal(killed.heldAfter, 0);
    const written = await metadataOf(prefix);
    assert.deepEqual(written, cleanMetadataFor("0003", jobId, prefix, written!.createdAt));
    assert.equal((await latest())?.version, "0002");
    assert.equal((await registry.getJob(jobId))?.modelUri, undefined, "the registry step after the pointer never ran");

    // Act: SQS redelivers the event.
    const republished = await republish(uri);

    // Assert: the version written before the crash is kept as it was (written once), and is now in force.
    assert.deepEqual(republished, written);
    assert.deepEqual(await metadataOf(prefix), written);
    assert.equal((await latest())?.version, "0003");
    assert.equal((await registry.getJob(jobId))?.modelUri, `s3://${bucket}/${prefix}metadata.json`);
  });
});

describe("the holding proxy", () => {
  it("passes requests through unchanged, a 100-continue upload of 2 MiB included", { timeout: 60_000 }, async () => {
    // Arrange: the S3 client asks for 100-continue from 2 MiB of body on (@aws-sdk/middleware-sdk-s3).
    const seen: ProxiedRequest[] = [];
    const proxy = await startHoldingProxy(emulator, (r) => {
      seen.push(r);
      return false;
    });
    const proxied = createAwsClients(awsSettingsFromEnv({ ...process.env, AWS_ENDPOINT_URL: proxy.endpoint }));
    const body = randomBytes(2 * 1024 * 1024);
    const at = { bucket, key: "proxy/big.bin" };

    try {
      // Act
      await putObject(proxied, at, body);
      const readBack = await getObject(proxied, at);

      // Assert
      assert.equal(seen[0]?.headers.expect, "100-continue");
      assert.equal(seen[0]?.body.length, body.length);
      assert.ok(readBack && Buffer.from(readBack.body).equals(body), "the object read through the proxy is the one uploaded");
      assert.equal((await getObject(clients, at))?.etag, readBack.etag, "and it is the one in the emulator");
      assert.equal(proxy.forwarded, 2);
    } finally {
      destroyAwsClients(proxied);
      await proxy.close();
    }
  });

  it("holds the first matching request and every request after it", { timeout: 60_000 }, async () => {
    // Arrange
    const proxy = await startHoldingProxy(emulator, dynamoDbCall("DescribeTable", registryTableName()));
    const proxied = createAwsClients(awsSettingsFromEnv({ ...process.env, AWS_ENDPOINT_URL: proxy.endpoint }));
    const abort = new AbortController(); // the held calls never return; aborting also stops SDK retries
    const calls: Promise<unknown>[] = [];

    try {
      // Act
      calls.push(proxied.s3.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: abort.signal }));
      await calls[0];
      calls.push(proxied.dynamodb.send(new DescribeTableCommand({ TableName: registryTableName() }), { abortSignal: abort.signal }));
      const held = await proxy.held;
      calls.push(proxied.s3.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: abort.signal }));
      const deadline = Date.now() + 10_000;
      while (proxy.heldAfter === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

      // Assert
      assert.equal(held.headers["x-amz-target"], "DynamoDB_20120810.DescribeTable");
      assert.equal(proxy.forwarded, 1, "only the request before the held one reached the emulator");
      assert.equal(proxy.heldAfter, 1, "the request after the held one was held too");
    } finally {
      abort.abort();
      await Promise.allSettled(calls);
      destroyAwsClients(proxied);
      await proxy.close();
    }
  });
});
