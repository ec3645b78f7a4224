/**
 * The job-watch stage on AWS, driven through its Lambda handler against the emulator: one round
 * per SQS message. A job whose members are DONE with its model published ends SUCCEEDED with its
 * queues deleted; a job with a FAILED member ends FAILED with that member's reason; a job still
 * running is queued again with a delay and the state of the round.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, ListQueuesCommand, PurgeQueueCommand } from "@aws-sdk/client-sqs";
import type { SQSEvent } from "aws-lambda";
import { handler } from "../../functions/job-watch/handler.ts";
import { createAwsClients, destroyAwsClients } from "../../src/aws/clients.ts";
import { publishExport } from "../../src/checkpoint/publish.ts";
import type { JobWatchMessage } from "../../src/events/job-watch-event.ts";
import { firstWatchMessage } from "../../src/jobs/job-watch-stage.ts";
import { modelKeys, queueName } from "../../src/jobs/names.ts";
import { createJobQueues } from "../../src/jobs/queues.ts";
import { Registry, ensureRegistryTable, registryTableName } from "../../src/registry/index.ts";
import { JOB_WATCH } from "../../src/resources/definitions.ts";
import { resetStageDeps } from "../../src/stage/deps.ts";
import { putJson, putObject } from "../../src/storage/objects.ts";

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
  const spec = {
    version: 1,
    jobId,
    mode: "train",
    cluster: { worker: 2, ps: 0 },
    python: { scripts: [], entry: "train", env: {} },
    queues,
    bucket,
    model: { modelId: `m-${jobId}`, version, exportUri: `s3://${bucket}/${exportPrefix}`, versionsUri: `s3://${bucket}/${modelKeys.versions(`m-${jobId}`)}`, inference: null },
    leaseMs: 60_000,
  };
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

const firstRound = (jobId: string): JobWatchMessage => firstWatchMessage({ spec: { jobId } as never, workers: { exits: [], relaunch: async () => undefined, stop: async () => undefined } });

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
  resetStageDeps();
});

after(async () => {
  await Promise.all(jobs.map(async (id) => {
    for (const url of await existingQueues(id)) await clients.sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
    await registry.deleteJob(id);
  }));
  await clients.sqs.send(new DeleteQueueCommand({ QueueUrl: watchQueueUrl }));
  process.env = saved;
  resetStageDeps();
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

async function waiting(): Promise<number> {
  const { Attributes = {} } = await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: watchQueueUrl, AttributeNames: ["ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessages"] }));
  return Number(Attributes.ApproximateNumberOfMessagesDelayed) + Number(Attributes.ApproximateNumberOfMessages);
}
