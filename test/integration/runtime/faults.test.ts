/**
 * The core flows under 5 % injected AWS faults (throttling, 5xx, timeouts, responses lost after
 * the write succeeded): retries, idempotent writes and dedupe must leave no visible difference.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { CreateQueueCommand, DeleteMessageBatchCommand, DeleteQueueCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { awsSettingsFromEnv, createAwsClients, destroyAwsClients } from "../../../src/aws/clients.ts";
import { injectedFaults, FAULT_KINDS } from "../../../src/aws/faults.ts";
import { moveLatest } from "../../../functions/checkpoint/publish.ts";
import { readLatest } from "../../../src/storage/latest-pointer.ts";
import { ConfigError } from "../../../src/errors.ts";
import { MODEL_FORMAT, MODEL_FORMAT_VERSION, type ModelMetadata } from "../../../src/protocol/model-metadata.ts";
import { Registry, ensureRegistryTable, registryTableName } from "../../../src/registry/index.ts";

const faulty = createAwsClients(awsSettingsFromEnv({ ...process.env, SERVERLESS_TF_FAULT_RATE: "0.05", SERVERLESS_TF_FAULT_SEED: "20261125" }));
const table = registryTableName();
const registry = new Registry(faulty, table);
const jobs: string[] = [];
const totalInjected = () => FAULT_KINDS.reduce((n, k) => n + injectedFaults[k], 0);

before(() => ensureRegistryTable(createAwsClients(), table));
after(async () => {
  await Promise.all(jobs.map((id) => registry.deleteJob(id)));
  destroyAwsClients(faulty);
  console.log(`injected faults: ${JSON.stringify(injectedFaults)}`);
});

describe("fault injection", () => {
  it("refuses a fault rate outside 0..0.5, naming the variable", () => {
    assert.throws(() => awsSettingsFromEnv({ SERVERLESS_TF_FAULT_RATE: "2" }), (e: unknown) => e instanceof ConfigError && e.message.includes("SERVERLESS_TF_FAULT_RATE"));
  });

  it("leaves the registry's jobs, registrations, barrier and shard progress exactly as without faults", async () => {
    // Arrange
    const before = totalInjected();
    const jobIds = Array.from({ length: 10 }, () => `flt-${randomUUID().slice(0, 8)}`);
    jobs.push(...jobIds);

    // Act
    for (const jobId of jobIds) {
      await registry.createJob({ jobId, mode: "train", spec: { version: 1 } });
      await registry.transitionJob(jobId, ["CREATED"], "RUNNING");
      const leases = await Promise.all([0, 1, 2, 3].map((index) => registry.register({ jobId, role: "worker", index, address: `127.0.0.1:${7000 + index}`, pid: 100 + index, leaseMs: 60_000 })));
      const specs = await Promise.all([0, 1, 2, 3].map(() => registry.awaitBarrier({ jobId, name: "start", expected: { worker: 4, ps: 0 }, timeoutMs: 30_000 })));
      for (let cursor = 100; cursor <= 500; cursor += 100) {
        await registry.recordShardProgress(jobId, "s00000", { cursor, seq: cursor / 100, done: cursor === 500, rowsPerMember: { "worker-0": cursor }, messagesPerMember: { "worker-0": cursor / 100 } });
      }
      await Promise.all(leases.map((lease, index) => registry.markMember({ jobId, role: "worker", index, epoch: lease.epoch, status: "DONE" })));
      await registry.transitionJob(jobId, ["RUNNING"], "SUCCEEDED");

      // Assert (per job)
      assert.ok(specs.every((s) => JSON.stringify(s) === JSON.stringify(specs[0])), "every member got the same cluster spec");
      assert.deepEqual(specs[0]!.worker, ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]);
    }

    // Assert
    for (const jobId of jobIds) {
      assert.equal((await registry.getJob(jobId))!.state, "SUCCEEDED");
      assert.deepEqual((await registry.members(jobId)).map((m) => m.status), ["DONE", "DONE", "DONE", "DONE"]);
      const shard = (await registry.getShard(jobId, "s00000"))!;
      assert.deepEqual([shard.cursor, shard.done], [500, true]);
    }
    assert.ok(totalInjected() > before, "faults were injected");
  });

  it("delivers every SQS message at least once and the consumer's dedupe by id sees each exactly once", async () => {
    // Arrange
    const { QueueUrl } = await faulty.sqs.send(new CreateQueueCommand({ QueueName: `faults-${randomUUID().slice(0, 8)}`, Attributes: { VisibilityTimeout: "2" } }));
    const ids = Array.from({ length: 300 }, (_, i) => `row-${i}`);
    const seen = new Set<string>();
    let received = 0;
    try {
      // Act
      for (let i = 0; i < ids.length; i += 25) await Promise.all(ids.slice(i, i + 25).map((id) => faulty.sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: id }))));
      for (let empty = 0; empty < 3; ) {
        const { Messages = [] } = await faulty.sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
        if (!Messages.length) {
          empty += seen.size === ids.length ? 1 : 0;
          continue;
        }
        received += Messages.length;
        Messages.forEach((m) => seen.add(m.Body!));
        await faulty.sqs.send(new DeleteMessageBatchCommand({ QueueUrl, Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
      }

      // Assert
      assert.deepEqual([...seen].sort(), [...ids].sort());
      console.log(`sqs under faults: ${ids.length} sent, ${received} received, ${received - ids.length} duplicates removed by id`);
    } finally {
      await faulty.sqs.send(new DeleteQueueCommand({ QueueUrl }));
    }
  });

  it("moves a model's latest pointer forward only, even when publishers race and responses are lost", async () => {
    // Arrange
    const bucket = `faults-${randomUUID().slice(0, 8)}`;
    await createAwsClients().s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const version = (n: number): ModelMetadata => ({
      format: MODEL_FORMAT,
      formatVersion: MODEL_FORMAT_VERSION,
      modelId: "m",
      version: `v${String(n).padStart(4, "0")}`,
      jobId: "job",
      createdAt: new Date().toISOString(),
      artifactUri: `s3://${bucket}/a/`,
      step: n,
      inference: null,
    });

    // Act
    await Promise.all(Array.from({ length: 30 }, (_, n) => moveLatest(faulty, bucket, version(n + 1), 50)));

    // Assert
    assert.equal((await readLatest(createAwsClients(), bucket, "m"))?.version, "v0030");
  });
});
