/**
 * feedShard on the emulator (functions/shard-feed/feed-shard.ts): a shard that runs out of time
 * hands over at the cursor it recorded and the continuation sends the rest, each row once; a send
 * that fails fails the invocation and leaves the cursor before that chunk.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { inflateRawSync } from "node:zlib";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { DeleteQueueCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { feedShard } from "../../../functions/shard-feed/feed-shard.ts";
import { createAwsClients, destroyAwsClients } from "../../../src/aws/clients.ts";
import { createDecoder } from "../../../src/codec/example.ts";
import type { Column } from "../../../src/codec/schema.ts";
import { unframeRecords } from "../../../src/codec/tfrecord.ts";
import { createQueue } from "../../../src/jobs/queues.ts";
import { rowToJson } from "../../../src/protocol/table-source.ts";
import { Registry } from "../../../src/registry/registry.ts";
import { ensureRegistryTable, registryTableName } from "../../../src/registry/index.ts";
import { putObject } from "../../../src/storage/objects.ts";
import { jobSpec } from "../../helpers/job-spec.ts";

const clients = createAwsClients();
const registry = new Registry(clients, registryTableName());
const deps = { clients, registry };
const bucket = `stf-feed-${randomUUID().slice(0, 8)}`;
const COLUMNS: Column[] = [{ name: "x", dtype: "FLOAT32", shape: "scalar" }];
const ROWS = 1_000;
const jobs: string[] = [];

before(async () => {
  await ensureRegistryTable(clients);
  await clients.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await putObject(clients, { bucket, key: "table/part-0.jsonl" }, Array.from({ length: ROWS }, (_, i) => rowToJson({ x: i })).join("\n") + "\n");
});
after(async () => {
  await Promise.all(jobs.map((id) => registry.deleteJob(id)));
  destroyAwsClients(clients);
});

/** A RUNNING one-worker job over the shard, with its planned shard recorded as the coordinator does. */
async function runningJob(feedQueueUrl: string) {
  const jobId = `fit-${randomUUID().slice(0, 8)}`;
  jobs.push(jobId);
  const spec = jobSpec({ jobId, bucket, input: { columns: COLUMNS }, queues: { feed: { "worker-0": feedQueueUrl }, output: "", dlq: "" } });
  await registry.createJob({ jobId, mode: "train", spec });
  await registry.transitionJob(jobId, ["CREATED"], "RUNNING");
  const shard = { shardId: "s00000", index: 0, uri: `s3://${bucket}/table/part-0.jsonl`, format: "jsonl" as const };
  await registry.recordShardProgress(jobId, shard.shardId, { cursor: 0, seq: 0, done: false, rowsPerMember: {}, messagesPerMember: {} });
  return { jobId, shard };
}

/** Every message on the queue, row messages decoded to their x values. */
async function drainFeed(queueUrl: string): Promise<{ xs: number[]; endOfData: { rows: number; messages: number }[] }> {
  const decoder = createDecoder(COLUMNS);
  const out = { xs: [] as number[], endOfData: [] as { rows: number; messages: number }[] };
  for (let empty = 0; empty < 2; ) {
    const { Messages = [] } = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 300 }));
    empty = Messages.length ? 0 : empty + 1;
    for (const m of Messages) {
      const body = JSON.parse(m.Body!) as { kind: string; data?: string; encoding?: string; rows?: number; messages?: number };
      if (body.kind === "end-of-data") out.endOfData.push({ rows: body.rows!, messages: body.messages! });
      else for (const frame of unframeRecords(inflateRawSync(Buffer.from(body.data!, "base64")))) out.xs.push(decoder.decode(frame, 0).x as number);
    }
  }
  return out;
}

describe("feedShard", { timeout: 120_000 }, () => {
  it("hands over at its recorded cursor when time runs out, and the continuation sends the rest: every row once", async () => {
    // Arrange
    const queueUrl = await createQueue(clients, `stf-test-feed-${randomUUID().slice(0, 8)}`);
    const { jobId, shard } = await runningJob(queueUrl);
    let checks = 0;
    // Time runs out when the fourth chunk has been read: three chunks of 100 rows are sent.
    const shortOfTime = () => (++checks > 3 ? 0 : Number.POSITIVE_INFINITY);
    // Act
    const first = await feedShard(deps, { jobId, shard }, { chunkRows: 100, remainingMs: shortOfTime, marginMs: 1 });
    const recorded = await registry.getShard(jobId, shard.shardId);
    const second = await feedShard(deps, { jobId, shard }, { chunkRows: 100 });
    const feed = await drainFeed(queueUrl);
    // Assert
    assert.deepEqual(first, { status: "continue", cursor: 300 });
    assert.equal(recorded?.cursor, 300, "the cursor handed over is the one recorded");
    assert.deepEqual(second, { status: "done", cursor: ROWS });
    assert.deepEqual([...feed.xs].sort((a, b) => a - b), Array.from({ length: ROWS }, (_, i) => i), "each row once, none missing");
    assert.equal(feed.endOfData.length, 1);
    assert.equal(feed.endOfData[0]!.rows, ROWS);
  });

  it("fails when a chunk's send fails, leaving the cursor before that chunk", async () => {
    // Arrange: the member's queue is gone
    const queueUrl = await createQueue(clients, `stf-test-gone-${randomUUID().slice(0, 8)}`);
    await clients.sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
    const { jobId, shard } = await runningJob(queueUrl);
    // Act
    const failure = await feedShard(deps, { jobId, shard }, { chunkRows: 100 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const recorded = await registry.getShard(jobId, shard.shardId);
    // Assert
    assert.ok(failure instanceof Error, "the invocation fails, so SQS brings the request back");
    assert.deepEqual([recorded?.cursor, recorded?.done], [0, false]);
  });
});
