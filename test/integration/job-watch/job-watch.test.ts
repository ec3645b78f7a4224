/**
 * The job-watch stage on AWS, driven through its Lambda handler against the emulator: one round
 * per SQS message. A job whose members are DONE with its model published ends SUCCEEDED with its
 * queues deleted; a job with a FAILED member ends FAILED with that member's reason; a job still
 * running is queued again with a delay and the state of the round. A finished inference job's
 * output queue is moved to S3 first, over as many rounds as it takes.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, ListQueuesCommand, PurgeQueueCommand } from "@aws-sdk/client-sqs";
import type { SQSEvent } from "aws-lambda";
import { handler } from "../../../functions/job-watch/handler.ts";
import { createAwsClients, destroyAwsClients } from "../../../src/aws/clients.ts";
import { publishExport } from "../../../functions/checkpoint/publish.ts";
import type { JobWatchMessage } from "../../../src/protocol/watch-message.ts";

import { modelKeys, queueName } from "../../../src/protocol/names.ts";
import { createJobQueues } from "../../../src/jobs/queues.ts";
import { Registry, ensureRegistryTable, registryTableName } from "../../../src/registry/index.ts";
import { JOB_WATCH } from "../../../src/resources/definitions.ts";
import { putJson, putObject } from "../../../src/storage/objects.ts";
import { createEncoder } from "../../../src/codec/example.ts";
import { frameRecords } from "../../../src/codec/tfrecord.ts";
import type { Column } from "../../../src/codec/schema.ts";

import type { OutputMessage } from "../../../src/protocol/feed-messages.ts";
import { runJobWatchRound } from "../../../functions/job-watch/watch-round.ts";
import { readJobOutput, readSavedOutput, tallySavedOutput } from "../../../src/jobs/output-store.ts";
import { JobNotFoundError } from "../../../src/registry/errors.ts";
import { jobKeys } from "../../../src/protocol/names.ts";
import { listKeys } from "../../../src/storage/objects.ts";
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { ROW_ID, ROW_ID_COLUMN } from "../../../src/protocol/feed-messages.ts";
import { firstWatchMessage } from "../../../src/jobs/watch-queue.ts";
import { jobSpec } from "../../helpers/job-spec.ts";

const clients = createAwsClients();
const registry = new Registry(clients, registryTableName());
const run = randomUUID().slice(0, 8);
const bucket = `watch-${run}`;
const jobs: string[] = [];
let watchQueueUrl = "";
const saved = { ...process.env };

/** A train job as the coordinator leaves it: RUNNING, its queues made, two workers registered. */
async function runningJob(name: string): Promise<{ jobId: string; exportPrefix: string; queues: string[] }> {
  const jobId = `${name}-${run}`;
  jobs.push(jobId);
  const queues = await createJobQueues(clients, jobId, ["worker-0", "worker-1"]);
  const version = "0001";
  const exportPrefix = modelKeys.version(`m-${jobId}`, version);
  const spec = jobSpec({
    jobId,
    cluster: { worker: 2, ps: 0 },
    queues,
    bucket,
    model: { modelId: `m-${jobId}`, version, exportUri: `s3://${bucket}/${exportPrefix}`, versionsUri: `s3://${bucket}/${modelKeys.versions(`m-${jobId}`)}`, inference: null },
  });
  await registry.createJob({ jobId, mode: "train", spec });
  await registry.transitionJob(jobId, ["CREATED"], "RUNNING");
  for (const index of [0, 1]) await registry.register({ jobId, role: "worker", index, address: `127.0.0.1:${2220 + index}`, pid: 1, leaseMs: 60_000 });
  return { jobId, exportPrefix, queues: [...Object.values(queues.feed), queues.output] };
}

const mark = (jobId: string, index: number, status: "DONE" | "FAILED", error?: string) =>
  registry.markMember({ jobId, role: "worker", index, epoch: 1, status, ...(error ? { error } : {}) });

/** What the chief and the checkpoint stage leave in S3: the files, export.json, then metadata.json. */
async function publishModel(jobId: string, prefix: string): Promise<void> {
  const file = { key: `${prefix}artifact/saved_model.pb`, body: "graph" };
  await putObject(clients, { bucket, key: file.key }, file.body);
  await putJson(clients, { bucket, key: `${prefix}export.json` }, { jobId, member: "worker-0", step: 10, files: [{ key: file.key, size: file.body.length }], createdAt: Date.now() });
  await publishExport({ clients, registry }, { bucket, key: `${prefix}export.json` });
}

const sqsEvent = (message: JobWatchMessage): SQSEvent =>
  ({ Records: [{ messageId: randomUUID(), body: JSON.stringify(message), eventSource: "aws:sqs", receiptHandle: "r", attributes: {}, messageAttributes: {}, md5OfBody: "", eventSourceARN: "arn:aws:sqs:us-east-1:000000000000:x", awsRegion: "us-east-1" }] }) as unknown as SQSEvent;

const firstRound = (jobId: string): JobWatchMessage => firstWatchMessage({ spec: { jobId } as never, workers: { exits: [], stop: async () => undefined } });

async function existingQueues(jobId: string): Promise<string[]> {
  const { QueueUrls = [] } = await clients.sqs.send(new ListQueuesCommand({ QueueNamePrefix: `stf-${jobId}-` }));
  return QueueUrls;
}

before(async () => {
  await ensureRegistryTable(clients, registryTableName());
  await clients.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  watchQueueUrl = (await clients.sqs.send(new CreateQueueCommand({ QueueName: `job-watch-${run}` }))).QueueUrl!;
  // What the stack sets on the function; workers of these jobs are not tasks, so no launcher can take them over.
  Object.assign(process.env, { SERVERLESS_TF_BUCKET: bucket, SERVERLESS_TF_JOB_WATCH_QUEUE_URL: watchQueueUrl, SERVERLESS_TF_LAUNCHER: "process" });
});

after(async () => {
  await Promise.all(jobs.map(async (id) => {
    for (const url of await existingQueues(id)) await clients.sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
    await registry.deleteJob(id);
  }));
  await clients.sqs.send(new DeleteQueueCommand({ QueueUrl: watchQueueUrl }));
  process.env = saved;
  destroyAwsClients(clients);
});

describe("job-watch handler", () => {
  it("finishes a job whose members are DONE and whose model is published: SUCCEEDED, its queues deleted, no next round", async () => {
    // Arrange
    const { jobId, exportPrefix, queues } = await runningJob("watch-ok");
    await mark(jobId, 0, "DONE");
    await mark(jobId, 1, "DONE");
    await publishModel(jobId, exportPrefix);
    // Act
    const response = await handler(sqsEvent(firstRound(jobId)));
    // Assert
    assert.deepEqual(response.batchItemFailures, []);
    assert.equal((await registry.getJob(jobId))?.state, "SUCCEEDED");
    const left = await existingQueues(jobId);
    for (const url of queues) assert.ok(!left.includes(url), `${url} deleted`);
    assert.deepEqual(left.map((u) => u.split("/").pop()), [queueName.dlq(jobId)], "the DLQ stays for inspection");
    assert.equal(await waiting(), 0, "no further round");
  });

  it("fails a job whose member is FAILED with that member's reason, and deletes its queues", async () => {
    // Arrange
    const { jobId, queues } = await runningJob("watch-bad");
    await mark(jobId, 0, "DONE");
    await mark(jobId, 1, "FAILED", "ValueError: bad batch at step 7");
    // Act
    const response = await handler(sqsEvent(firstRound(jobId)));
    // Assert
    assert.deepEqual(response.batchItemFailures, []);
    const job = await registry.getJob(jobId);
    assert.equal(job?.state, "FAILED");
    assert.match(job?.error ?? "", /worker-1: ValueError: bad batch at step 7/);
    const left = await existingQueues(jobId);
    for (const url of queues) assert.ok(!left.includes(url), `${url} deleted`);
    assert.equal(await waiting(), 0, "no further round");
  });

  it("queues the next round of a running job, with the round's delay, and keeps its queues", async () => {
    // Arrange
    const { jobId } = await runningJob("watch-on");
    await registry.heartbeat({ jobId, role: "worker", index: 0, epoch: 1, leaseMs: 60_000, progress: { step: 3, rowsConsumed: 9 } });
    // Act
    const response = await handler(sqsEvent(firstRound(jobId)));
    // Assert
    assert.deepEqual(response.batchItemFailures, []);
    assert.equal((await registry.getJob(jobId))?.state, "RUNNING");
    const { Attributes = {} } = await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: watchQueueUrl, AttributeNames: ["ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessages"] }));
    assert.equal(Number(Attributes.ApproximateNumberOfMessagesDelayed), 1, `the next round waits ${JOB_WATCH.roundDelaySeconds} s`);
    assert.equal(Number(Attributes.ApproximateNumberOfMessages), 0);
    assert.equal((await existingQueues(jobId)).length, 4, "its queues stay while it runs");
    await clients.sqs.send(new PurgeQueueCommand({ QueueUrl: watchQueueUrl }));
  });
});

const OUTPUT_COLUMNS: Column[] = [{ name: "y", dtype: "FLOAT32", shape: "scalar" }];

/**
 * An inference job whose two workers are DONE, with what they sent on its output queue: rows
 * 0..n-1 in batches of 7, then end-of-output each; `lost` rows messages are left out from the start.
 */
async function finishedInferenceJob(name: string, rows: number, lost = 0) {
  const jobId = `${name}-${run}`;
  jobs.push(jobId);
  const queues = await createJobQueues(clients, jobId, ["worker-0", "worker-1"]);
  const spec = jobSpec({ jobId, mode: "inference", cluster: { worker: 2, ps: 0 }, python: { scripts: [], entry: "infer", hyperParams: {}, env: {} }, output: { columns: OUTPUT_COLUMNS }, queues, bucket });
  await registry.createJob({ jobId, mode: "inference", spec });
  await registry.transitionJob(jobId, ["CREATED"], "RUNNING");
  const encoder = createEncoder([...OUTPUT_COLUMNS, ROW_ID_COLUMN]);
  const messages: OutputMessage[] = [];
  const sent = { "worker-0": 0, "worker-1": 0 };
  for (let start = 0, seq = 0; start < rows; start += 7, seq++) {
    const member = seq % 2 === 0 ? "worker-0" : "worker-1";
    const ids = Array.from({ length: Math.min(7, rows - start) }, (_, i) => start + i);
    sent[member] += ids.length;
    const data = Buffer.from(frameRecords(ids.map((i) => encoder.encode({ y: i / 2, [ROW_ID]: BigInt(i) })))).toString("base64");
    messages.push({ v: 1, kind: "rows", job: jobId, seq, member, count: ids.length, data });
  }
  for (const member of ["worker-0", "worker-1"] as const) messages.push({ v: 1, kind: "end-of-output", job: jobId, member, rows: sent[member] });
  const delivered = messages.slice(lost);
  for (let i = 0; i < delivered.length; i += 10) {
    await clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: queues.output, Entries: delivered.slice(i, i + 10).map((m, j) => ({ Id: String(j), MessageBody: JSON.stringify(m) })) }));
  }
  for (const index of [0, 1]) {
    await registry.register({ jobId, role: "worker", index, address: `127.0.0.1:${2230 + index}`, pid: 1, leaseMs: 60_000 });
    await mark(jobId, index, "DONE");
  }
  return { jobId, spec, messages };
}

describe("one chain of rounds per job", () => {
  it("drops a duplicated watch message (another SQS message for the same round) and grants a redelivery of the one that claimed it", async () => {
    // Arrange: a running job; its first round sent twice (an SDK retry after a lost response makes two messages).
    const { jobId } = await runningJob("watch-dup");
    await registry.heartbeat({ jobId, role: "worker", index: 0, epoch: 1, leaseMs: 60_000, progress: { step: 3, rowsConsumed: 9 } });
    const sent: JobWatchMessage[] = [];
    const ports = { launcher: { launch: async () => assert.fail("no launch") } as never, send: async (m: JobWatchMessage) => void sent.push(m) };
    const round0 = firstRound(jobId);

    // Act
    const first = await runJobWatchRound({ clients, registry }, round0, "message-a", ports);
    const duplicate = await runJobWatchRound({ clients, registry }, round0, "message-b", ports);
    const redelivered = await runJobWatchRound({ clients, registry }, round0, "message-a", ports);
    const second = await runJobWatchRound({ clients, registry }, sent[0]!, "message-c", ports);

    // Assert
    assert.deepEqual([first.status, duplicate.status, redelivered.status, second.status], ["watching", "duplicate", "watching", "watching"]);
    assert.deepEqual(sent.map((m) => m.round), [1, 1, 2], "the duplicate queued nothing; the redelivery queued round 1 again, which only one message can claim");
    const stale = await runJobWatchRound({ clients, registry }, sent[1]!, "message-d", ports);
    assert.equal(stale.status, "duplicate", "the round-1 copy from the redelivery is refused once round 1 was claimed");
  });
});

describe("a restart round delivered again", () => {
  it("does not fence the member set its first delivery started, and asks for that attempt's tasks again", async () => {
    // Arrange: worker-1's task stopped with 137 (a launcher that can take the tasks over and restart them).
    const { jobId } = await runningJob("watch-restart");
    const restarts: number[] = [];
    const launcher = {
      launch: async () => assert.fail("no launch"),
      attach: () => ({ exits: [{ member: { role: "worker" as const, index: 1 }, code: 137, signal: null, tail: "OutOfMemoryError" }], restart: async (attempt: number) => void restarts.push(attempt), stop: async () => undefined, handles: () => [] }),
    };
    const sent: JobWatchMessage[] = [];
    const ports = { launcher, send: async (m: JobWatchMessage) => void sent.push(m) };
    const round0 = firstRound(jobId);

    // Act: the round restarts the set as attempt 1; the set registers; the same message comes again.
    const first = await runJobWatchRound({ clients, registry }, round0, "message-a", ports);
    for (const index of [0, 1]) await registry.register({ jobId, role: "worker", index, address: `127.0.0.1:${2240 + index}`, pid: 2, leaseMs: 60_000 });
    const again = await runJobWatchRound({ clients, registry }, round0, "message-a", ports);

    // Assert
    assert.deepEqual([first.status, again.status], ["watching", "watching"]);
    assert.deepEqual(restarts, [1, 1], "the second delivery asks for attempt 1 again (RunTask's client token returns its tasks)");
    const members = await registry.members(jobId);
    assert.deepEqual(members.map((m) => [m.epoch, m.status]), [[2, "ACTIVE"], [2, "ACTIVE"]], "attempt 1's members were not fenced by the second delivery");
    assert.deepEqual(sent.map((m) => [m.round, m.state.attempt]), [[1, 1], [1, 1]], "both queue round 1 of attempt 1; only one can claim it");
  });
});

describe("job-watch of an inference job", () => {
  it("moves the output queue to S3 over several rounds before finishing, so no row goes with the deleted queue", async () => {
    // Arrange: 300 rows in 43 rows messages + 2 end-of-output; a budget that lets a round save only part of them.
    const { jobId, spec, messages } = await finishedInferenceJob("watch-out", 300);
    // A worker's send retried after a lost response: the same rows message twice.
    await clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: spec.queues.output, Entries: [{ Id: "0", MessageBody: JSON.stringify(messages[0]) }] }));
    const sent: JobWatchMessage[] = [];
    const ports = { launcher: { launch: async () => assert.fail("no launch") } as never, send: async (m: JobWatchMessage) => void sent.push(m), outputBudgetMs: 1 };

    // Act: rounds until the job is finished.
    const outcomes = [];
    let next: JobWatchMessage | undefined = firstRound(jobId);
    while (next && outcomes.length < 100) {
      const outcome = await runJobWatchRound({ clients, registry }, next, randomUUID(), ports);
      outcomes.push(outcome.status);
      next = outcome.status === "watching" ? sent.pop() : undefined;
    }

    // Assert
    assert.ok(outcomes.length > 2, `several rounds drained the queue: ${outcomes.join(", ")}`);
    assert.deepEqual(outcomes.slice(-1), ["succeeded"]);
    assert.equal((await registry.getJob(jobId))?.state, "SUCCEEDED");
    assert.deepEqual((await existingQueues(jobId)).map((u) => u.split("/").pop()), [queueName.dlq(jobId)], "the output queue was deleted only after it was saved");
    const saved = await readSavedOutput(clients, spec as never);
    const tally = await tallySavedOutput(clients, spec as never);
    const rows = await readJobOutput({ clients, registry }, jobId);
    assert.equal(saved.complete, true);
    assert.deepEqual([...rows.keys()].sort((a, b) => Number(a - b)), [...saved.rows.keys()].sort((a, b) => Number(a - b)), "a user reads the same rows by job id");
    await assert.rejects(readJobOutput({ clients, registry }, `no-such-job-${run}`), JobNotFoundError);
    assert.deepEqual([tally.rows, tally.promised, tally.unfinished, tally.unreadable], [300, 300, [], 0], "the repeated message counts once");
    assert.deepEqual([...saved.rows.keys()].sort((a, b) => Number(a - b)), Array.from({ length: 300 }, (_, i) => BigInt(i)));
    assert.equal(saved.rows.get(41n)?.y, 20.5);
    const parts = await listKeys(clients, { bucket, key: jobKeys.output(jobId) });
    assert.equal(parts.length, tally.parts);
    assert.ok(parts.length >= Math.ceil((messages.length + 1) / 10), `${parts.length} parts`);
  });

  it("looks again after the queue's visibility timeout, then fails the job naming what is missing, when the saved output lacks announced rows", async () => {
    // Arrange: worker-0's first 7 rows never reached the queue.
    const { jobId } = await finishedInferenceJob("watch-short", 20, 1);
    const sent: JobWatchMessage[] = [];
    const ports = { launcher: { launch: async () => assert.fail("no launch") } as never, send: async (m: JobWatchMessage) => void sent.push(m), outputSettleMs: 60_000 };

    // Act: the first look finds it short; a look after the settle time still does.
    const first = await runJobWatchRound({ clients, registry }, firstRound(jobId), randomUUID(), ports);
    const later = { ...sent[0]!, outputShortSince: sent[0]!.outputShortSince! - 60_001 };
    const outcome = await runJobWatchRound({ clients, registry }, later, randomUUID(), ports);

    // Assert
    assert.equal(first.status, "watching", "short output is looked at again before the job fails");
    assert.ok(sent[0]?.outputShortSince, "the next round carries when it was first found short");
    assert.equal(outcome.status, "failed");
    assert.match(outcome.status === "failed" ? outcome.error : "", /: 13 rows saved of 20 announced; members without end-of-output: none; unreadable messages: 0\. .*DLQ \(http/);
    assert.equal((await registry.getJob(jobId))?.state, "FAILED");
  });
});

async function waiting(): Promise<number> {
  const { Attributes = {} } = await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: watchQueueUrl, AttributeNames: ["ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessages"] }));
  return Number(Attributes.ApproximateNumberOfMessagesDelayed) + Number(Attributes.ApproximateNumberOfMessages);
}
