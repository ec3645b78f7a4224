/**
 * The Lambda bundles as deployed: `buildFunctions()` output imported from its file and invoked
 * with events of the real AWS shapes, against the emulator. The coordinator bundle starts a
 * real worker process; the shard-feed bundle feeds it from the message the coordinator queued.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { CreateQueueCommand, DeleteQueueCommand, GetQueueUrlCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { buildFunctions, type BuiltFunction } from "../../../scripts/build.ts";
import { createAwsClients, destroyAwsClients } from "../../../src/aws/clients.ts";
import type { CoordinatorResponse } from "../../../functions/coordinator/handler.ts";
import { deleteJobQueues } from "../../../src/jobs/queues.ts";
import type { JobQueues } from "../../../src/protocol/spec.ts";
import { queueName, type MemberKey } from "../../../src/protocol/names.ts";
import { projectRoot } from "../../../src/workers/paths.ts";
import { Registry } from "../../../src/registry/registry.ts";
import { ensureRegistryTable, registryTableName } from "../../../src/registry/table.ts";
import { getJson, putObject } from "../../../src/storage/objects.ts";
import { parseJobSpec } from "../../../src/protocol/spec.ts";

type Handler = (event: unknown, context?: unknown) => Promise<unknown>;

const run = randomBytes(4).toString("hex");
const bucket = `stf-bundles-${run}`;
const clients = createAwsClients();
const registry = new Registry(clients, registryTableName());
let built: BuiltFunction[] = [];
const handlers = new Map<string, Handler>();
let shardFeedQueueUrl = "";
const outDir = join(projectRoot, ".tmp", `bundles-${run}`);

function sqsEvent(...bodies: string[]): SQSEvent {
  const Records = bodies.map(
    (body, i): SQSRecord => ({
      messageId: `m-${i}`,
      receiptHandle: `r-${i}`,
      body,
      attributes: { ApproximateReceiveCount: "1", SentTimestamp: String(Date.now()), SenderId: "test", ApproximateFirstReceiveTimestamp: String(Date.now()) },
      messageAttributes: {},
      md5OfBody: "",
      eventSource: "aws:sqs",
      eventSourceARN: "arn:aws:sqs:us-east-1:000000000000:test",
      awsRegion: "us-east-1",
    }),
  );
  return { Records };
}

/** Runs `fn` with console.error captured (the stages log what they reject there). */
async function captureErrors<T>(fn: () => Promise<T>): Promise<{ result: T; logged: string }> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    return { result: await fn(), logged: lines.join("\n") };
  } finally {
    console.error = original;
  }
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

before(async () => {
  await clients.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await ensureRegistryTable(clients, registryTableName());
  await putObject(clients, { bucket, key: `code/${run}/feed_probe.py` }, readFileSync(join(import.meta.dirname, "..", "scripts", "feed_probe.py")));
  await putObject(clients, { bucket, key: `input/${run}/part-0.jsonl` }, Array.from({ length: 10 }, (_, i) => JSON.stringify({ x: [i, -i] })).join("\n"));
  shardFeedQueueUrl = (await clients.sqs.send(new CreateQueueCommand({ QueueName: `stf-bundles-${run}-shard-feed` }))).QueueUrl!;
  // What the stack sets on the functions; the bundles read it at their first invocation.
  Object.assign(process.env, { SERVERLESS_TF_BUCKET: bucket, SERVERLESS_TF_SHARD_FEED_QUEUE_URL: shardFeedQueueUrl });
  delete process.env.SERVERLESS_TF_LAUNCHER;
  built = await buildFunctions({ outDir, log: () => undefined });
  for (const b of built) handlers.set(b.name, ((await import(pathToFileURL(b.file).href)) as { handler: Handler }).handler);
});

after(async () => {
  await clients.sqs.send(new DeleteQueueCommand({ QueueUrl: shardFeedQueueUrl }));
  destroyAwsClients(clients);
  rmSync(outDir, { recursive: true, force: true });
});

/** A valid start request for `jobId`: one worker running feed_probe.py over one JSON Lines object of 10 rows. */
function startRequest(jobId: string) {
  return {
    jobId,
    mode: "train",
    cluster: { worker: 1, ps: 0 },
    python: { scripts: [`s3://${bucket}/code/${run}/feed_probe.py`], entry: "train" },
    input: { columns: [{ name: "x", dtype: "FLOAT32", shape: { fixed: 2 } }] },
    output: null,
    batchSize: 4,
    remainder: { policy: "flush", afterMs: 0 },
    source: { kind: "s3", uri: `s3://${bucket}/input/${run}/` },
  };
}

describe("the function bundles", () => {
  it("bundle every function as minified ESM for Node.js 22 with the pinned AWS SDK inside", () => {
    const functions = readdirSync(join(projectRoot, "functions")).filter((name) => existsSync(join(projectRoot, "functions", name, "handler.ts")));
    assert.deepEqual(built.map((b) => b.name), functions.sort());
    assert.ok(functions.includes("coordinator"));
    for (const b of built) {
      const code = readFileSync(b.file, "utf8");
      assert.ok(b.file.endsWith(join(b.name, "index.mjs")));
      assert.doesNotMatch(code, /from"@aws-sdk\//, `${b.name} bundles the SDK instead of importing the runtime's`);
      // The SDK's multi-line template strings keep some newlines: minified means long lines.
      const lines = code.split("\n").length;
      assert.ok(code.length / lines > 4096, `${b.name} is minified (${lines} lines for ${code.length} characters)`);
      assert.ok(b.bytes < 1024 * 1024, `${b.name} is ${b.bytes} bytes`);
      assert.equal(typeof handlers.get(b.name), "function");
    }
  });

  it("shard-feed drops a malformed record with a typed error and reports a retryable failure as a batch item failure", async () => {
    // Arrange
    const event = sqsEvent("{not json", JSON.stringify({ jobId: `gone-${run}`, shard: { shardId: "s00000", index: 0, uri: `s3://${bucket}/x.jsonl`, format: "jsonl" } }));

    // Act
    const { result, logged } = await captureErrors(() => handlers.get("shard-feed")!(event, { getRemainingTimeInMillis: () => 60_000 }));

    // Assert
    assert.deepEqual(result, { batchItemFailures: [{ itemIdentifier: "m-1" }] });
    assert.match(logged, /shard-feed event: body must be JSON/);
    assert.match(logged, /job gone-[0-9a-f]+ is not in the registry/);
  });

  it("checkpoint accepts an s3:TestEvent, drops a malformed body and retries an export that is not there", async () => {
    // Arrange
    const missing = { Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: { name: bucket }, object: { key: "models/m/versions/v1/export.json" } } }] };
    const event = sqsEvent(JSON.stringify({ Service: "Amazon S3", Event: "s3:TestEvent", Bucket: bucket }), '{"Records": "nope"}', JSON.stringify(missing));

    // Act
    const { result, logged } = await captureErrors(() => handlers.get("checkpoint")!(event));

    // Assert
    assert.deepEqual(result, { batchItemFailures: [{ itemIdentifier: "m-2" }] });
    assert.match(logged, /Records must be an array of S3 event records/);
  });

  it("inference refuses a batch from a queue that is not a served model's with a ConfigError naming the source, not an undefined deep inside", async () => {
    // Lambda treats a synchronous throw and a rejection alike: an invocation error, retried.
    await assert.rejects(async () => handlers.get("inference")!(sqsEvent("{not json")), (e: unknown) => e instanceof Error && e.name === "ConfigError" && e.message.includes("eventSourceARN") && e.message.includes("stf-serve-"));
  });

  it("coordinator rejects malformed start events with the field named, and a missing launcher setting by its name", async () => {
    const coordinator = handlers.get("coordinator")!;
    const bad = (await coordinator({ action: "stop" })) as CoordinatorResponse;
    assert.equal(bad.status, "rejected");
    assert.ok(bad.status === "rejected" && bad.error.type === "EventShapeError" && bad.error.message.includes("event.action"));

    const local = (await coordinator({ action: "start", request: { mode: "train", cluster: { worker: 1 }, python: { scripts: ["model.py"], entry: "train" } } })) as CoordinatorResponse;
    assert.ok(local.status === "rejected" && local.error.type === "EventShapeError" && local.error.message.includes("event.request.python.scripts"), JSON.stringify(local));

    const unset = (await coordinator({ action: "start", request: startRequest(`unset-${run}`) })) as CoordinatorResponse;
    assert.ok(unset.status === "rejected" && unset.error.type === "ConfigError" && unset.error.message.includes("SERVERLESS_TF_LAUNCHER"), JSON.stringify(unset));
  });

  it("coordinator starts a job whose shard reaches a real worker through the shard-feed bundle; a repeated start is refused and harmless", { timeout: 90_000 }, async () => {
    // Arrange
    process.env.SERVERLESS_TF_LAUNCHER = "process";
    const jobId = `bundle-${run}`;
    const request = startRequest(jobId);
    const coordinator = handlers.get("coordinator")!;
    const queues: JobQueues = { feed: { "worker-0": "" } as Record<MemberKey, string>, output: "", dlq: "" };

    try {
      // Act
      const started = (await coordinator({ action: "start", request })) as CoordinatorResponse;
      const again = (await coordinator(JSON.stringify({ action: "start", request }))) as CoordinatorResponse;
      const feedQueue = (await clients.sqs.send(new GetQueueUrlCommand({ QueueName: queueName.feed(jobId, "worker-0") }))).QueueUrl!;
      Object.assign(queues, {
        feed: { "worker-0": feedQueue },
        output: (await clients.sqs.send(new GetQueueUrlCommand({ QueueName: queueName.output(jobId) }))).QueueUrl!,
        dlq: (await clients.sqs.send(new GetQueueUrlCommand({ QueueName: queueName.dlq(jobId) }))).QueueUrl!,
      });
      const { Messages = [] } = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: shardFeedQueueUrl, WaitTimeSeconds: 5, MaxNumberOfMessages: 10 }));
      const fed = (await handlers.get("shard-feed")!(sqsEvent(...Messages.map((m) => m.Body!)), { getRemainingTimeInMillis: () => 60_000 })) as SQSBatchResponse;
      const probe = await until("the worker reports the rows it consumed", 75_000, async () => (await getJson<{ rows: number; rows_seen: number }>(clients, { bucket, key: `jobs/${jobId}/probe/worker-0.json` }))?.value);
      const member = await until("the worker is DONE", 15_000, async () => (await registry.members(jobId)).find((m) => m.status === "DONE"));

      // Assert
      assert.deepEqual(started, { status: "started", jobId, mode: "train", members: ["worker-0"], shards: 1 });
      assert.ok(again.status === "rejected" && again.error.type === "JobConflictError", JSON.stringify(again));
      assert.equal(Messages.length, 1, "one shard-feed request per shard");
      assert.deepEqual(fed.batchItemFailures, []);
      assert.deepEqual(probe, { rows: 10, rows_seen: 10 }, "the feed queue survived the repeated start and carried every row once");
      assert.equal((await registry.getJob(jobId))?.state, "RUNNING");
      await until("the worker process exits", 10_000, async () => {
        try {
          process.kill(member.pid, 0);
          return undefined;
        } catch {
          return true;
        }
      });
    } finally {
      await registry.transitionJob(jobId, ["CREATED", "RUNNING"], "STOPPED").catch(() => undefined);
      if (queues.dlq) await deleteJobQueues(clients, queues, { includeDlq: true });
    }
  });
  it("coordinator starts one fit per new training object from the fit-triggers queue, even when the S3 event comes twice", { timeout: 90_000 }, async () => {
    // Arrange: the params beside the data, then the S3 notification as SQS delivers it (key URL-encoded)
    process.env.SERVERLESS_TF_LAUNCHER = "process";
    const folder = `training/${run} set/`;
    await putObject(clients, { bucket, key: `${folder}_fit.json` }, JSON.stringify({
      params: { workerNum: 1, trainScripts: [`s3://${bucket}/code/${run}/feed_probe.py`], trainEntry: "train", trainSelectedCols: ["x"], batchSize: 4, modelId: `trig-${run}` },
      schema: [{ name: "x", dtype: "FLOAT32", shape: { fixed: 2 } }],
    }));
    const data = { bucket, key: `${folder}day 1.jsonl` };
    await putObject(clients, data, Array.from({ length: 8 }, (_, i) => JSON.stringify({ x: [i, -i] })).join("\n"));
    const notification = JSON.stringify({ Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: { name: bucket }, object: { key: encodeURIComponent(data.key).replace(/%20/g, "+") } } }] });
    const coordinator = handlers.get("coordinator")!;
    let jobId: string | undefined;

    try {
      // Act
      const first = await captureErrors(() => coordinator(sqsEvent(notification)) as Promise<SQSBatchResponse>);
      const second = await captureErrors(() => coordinator(sqsEvent(notification)) as Promise<SQSBatchResponse>);
      jobId = /started (fit-[0-9a-f]+)/.exec(first.logged)?.[1];

      // Assert
      assert.deepEqual(first.result.batchItemFailures, []);
      assert.deepEqual(second.result.batchItemFailures, []);
      assert.ok(jobId, `the first event started a job: ${first.logged}`);
      assert.match(second.logged, new RegExp(`duplicate ${jobId}`), "the second event found the job and started nothing");
      const job = await registry.getJob(jobId);
      assert.ok(job && ["RUNNING", "SUCCEEDED"].includes(job.state), `job ${jobId} is ${job?.state}`);
    } finally {
      if (jobId) {
        await registry.transitionJob(jobId, ["CREATED", "RUNNING"], "STOPPED").catch(() => undefined);
        const job = await registry.getJob(jobId);
        if (job) await deleteJobQueues(clients, parseJobSpec(job.spec).queues, { includeDlq: true });
      }
    }
  });
});
