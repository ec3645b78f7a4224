/**
 * Issue #4 acceptance through the public API: `TFEstimator.fit` and `TFModel.transform` on the
 * local runtime (emulator + real shard-feed/checkpoint handlers + real TensorFlow worker
 * processes). One runtime for the whole file; each fit cleans up its own queues and processes.
 *
 * Rows seen are observed by the user script itself: one pass over `ctx.dataset()` (the dataset
 * the model trains on), reported as an `STF_PROGRESS` line that `fit(table, { onProgress })`
 * receives per member.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { GetQueueUrlCommand, ListQueuesCommand, QueueDoesNotExist, SendMessageCommand } from "@aws-sdk/client-sqs";
import { ConfigError, JobFailedError, LocalRuntime, TFEstimator, TFModel, Table, schemaOf, type Row } from "../../../src/index.ts";
import { createAwsClients, destroyAwsClients } from "../../../src/aws/clients.ts";
import { feedShard } from "../../../functions/shard-feed/feed-shard.ts";
import { queueName, type MemberKey } from "../../../src/protocol/names.ts";
import type { JobRuntime } from "../../../src/runtime/job-runtime.ts";
import type { WorkerProgress } from "../../../src/workers/launcher.ts";
import { getJson, putObject } from "../../../src/storage/objects.ts";
import { createEncoder } from "../../../src/codec/example.ts";
import { frameRecords } from "../../../src/codec/tfrecord.ts";
import { parseS3Uri } from "../../../src/protocol/names.ts";
import type { RemainderParam } from "../../../src/api/tf-params.ts";

const SCRIPTS = join(import.meta.dirname, "..", "scripts");
const COUNTING = join(SCRIPTS, "counting_model.py");
const FAILING = join(SCRIPTS, "failing_model.py");
const TIMEOUT_MS = 150_000;

const schema = schemaOf({ x: "FLOAT32[2]", y: "FLOAT32", n: "INT64" });
const rowsOf = (count: number): Row[] => Array.from({ length: count }, (_, i) => ({ x: [i / count, 1 - i / count], y: (i % 7) / 7, n: BigInt(i) }));

/** What counting_model.py reports about one pass over a member's dataset. */
interface DatasetReport {
  readonly member: number;
  readonly rows: number;
  readonly real_rows: number;
  readonly batches: number;
  readonly rows_seen: number;
  readonly steps: number;
  /** round(x[0] * 1e6) of each real row the pass delivered: with rowsOf(count), row i is i * 1e6 / count. */
  readonly ids: readonly number[];
}

let runtime: LocalRuntime;

before(async () => {
  runtime = await LocalRuntime.start();
});

after(async () => {
  await runtime.close();
});

function countingEstimator(rt: JobRuntime, remainder: RemainderParam, workers = 2): TFEstimator {
  return new TFEstimator()
    .withRuntime(rt)
    .setWorkerNum(workers)
    .setTrainScripts([COUNTING])
    .setTrainEntry("train")
    .setTrainSelectedCols(["x", "y"])
    .setBatchSize(3)
    .setRemainder(remainder)
    .setModelId("it-counting")
    .setTimeoutMs(TIMEOUT_MS);
}

async function fitAndCount(estimator: TFEstimator, table: Table): Promise<{ model: TFModel; reports: DatasetReport[] }> {
  const reports: DatasetReport[] = [];
  const onProgress = (p: WorkerProgress) => {
    if (p.kind === "dataset") reports.push({ ...(p as unknown as DatasetReport), member: p.member.index });
  };
  const model = await estimator.fit(table, { onProgress });
  return { model, reports: reports.sort((a, b) => a.member - b.member) };
}

const total = (reports: readonly DatasetReport[], key: "rows" | "real_rows" | "rows_seen") => reports.reduce((sum, r) => sum + r[key], 0);

async function queueExists(name: string): Promise<boolean> {
  try {
    await runtime.deps.clients.sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    return true;
  } catch (e) {
    if (e instanceof QueueDoesNotExist) return false;
    throw e;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("fit on 1,000 rows, batch size 3, 2 workers", { timeout: 4 * 60_000 }, () => {
  it("ends under every remainder policy with the rows each policy promises (three fits at once, no collisions)", async () => {
    // Arrange
    const table = Table.fromRows(schema, rowsOf(1_000));

    // Act
    const [drop, pad, flush] = await Promise.all((["drop", "pad", { flushAfterMs: 0 }] as const).map((r) => fitAndCount(countingEstimator(runtime, r), table)));

    // Assert: each worker gets 500 rows; steps = floor(500/3) = 166 (drop) or ceil = 167 (pad, flush)
    assert.deepEqual(drop!.reports.map((r) => [r.batches, r.rows, r.real_rows, r.rows_seen]), [[166, 498, 498, 498], [166, 498, 498, 498]]);
    assert.equal(total(drop!.reports, "real_rows"), 996);
    assert.deepEqual(pad!.reports.map((r) => [r.batches, r.rows, r.real_rows, r.rows_seen]), [[167, 501, 500, 500], [167, 501, 500, 500]]);
    assert.equal(total(pad!.reports, "real_rows"), 1_000, "pad: every real row once");
    assert.equal(total(pad!.reports, "rows") - total(pad!.reports, "real_rows"), 2, "pad: one masked padding row per worker");
    assert.deepEqual(flush!.reports.map((r) => [r.batches, r.rows, r.real_rows, r.rows_seen]), [[167, 500, 500, 500], [167, 500, 500, 500]]);
    assert.equal(total(flush!.reports, "real_rows"), 1_000);
    const models = [drop!, pad!, flush!].map((f) => f.model.metadata);
    assert.equal(new Set(models.map((m) => m.jobId)).size, 3, "three jobs, three ids");
    assert.equal(new Set(models.map((m) => m.version)).size, 3, "three published versions");
  });

  it("trains on no row twice when every feed message and every shard-feed request is delivered twice", async () => {
    // Arrange: shards are fed in-process through an SQS client that sends every rows message
    // twice (same body, same feedId: what SQS at-least-once delivery does), then the shard-feed
    // request is delivered again through the real shard-feed handler.
    const clients = createAwsClients(runtime.deps.clients.settings);
    const send = clients.sqs.send.bind(clients.sqs);
    let duplicates = 0;
    clients.sqs.send = (async (command: Parameters<typeof send>[0]) => {
      const out = await send(command);
      if (command instanceof SendMessageCommand && JSON.parse(command.input.MessageBody ?? "{}").kind === "rows") {
        await send(new SendMessageCommand(command.input));
        duplicates += 1;
      }
      return out;
    }) as unknown as typeof clients.sqs.send;
    const redelivering = runtime.interceptingShards(async (event, dispatch) => {
      await feedShard({ clients, registry: runtime.deps.registry }, event);
      await dispatch(event);
    });

    try {
      // Act
      const { model, reports } = await fitAndCount(countingEstimator(redelivering, { flushAfterMs: 0 }), Table.fromRows(schema, rowsOf(1_000)));

      // Assert
      assert.ok(duplicates >= 2, `every rows message was sent twice (${duplicates} copies)`);
      assert.deepEqual(reports.map((r) => [r.batches, r.real_rows, r.rows_seen]), [[167, 500, 500], [167, 500, 500]]);
      const ids = reports.flatMap((r) => r.ids);
      assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: 1_000 }, (_, i) => Math.round((i / 1_000) * 1e6)), "each row once, by id, over both workers");
      const shards = await runtime.deps.registry.shards(model.metadata.jobId);
      assert.equal(shards.reduce((sum, s) => sum + Object.values(s.rowsPerMember).reduce((a, b) => a + b, 0), 0), 1_000, "the registry counts each row once");
    } finally {
      destroyAwsClients(clients);
    }
  });
});

describe("a fit whose user code fails", { timeout: 3 * 60_000 }, () => {
  async function assertCleanFailure(fit: Promise<unknown>, expected: RegExp[]): Promise<JobFailedError> {
    const error = await fit.then(
      () => assert.fail("fit() resolved"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof JobFailedError, `a JobFailedError, got ${String(error)}`);
    for (const pattern of expected) assert.match(error.message, pattern);
    const job = await runtime.deps.registry.getJob(error.jobId);
    assert.equal(job?.state, "FAILED");
    const members = await runtime.deps.registry.members(error.jobId);
    assert.ok(members.length > 0, "the workers had registered");
    assert.deepEqual(members.filter((m) => processAlive(m.pid)).map((m) => m.pid), [], "no worker process remains");
    for (const name of [queueName.feed(error.jobId, "worker-0" as MemberKey), queueName.output(error.jobId)]) assert.equal(await queueExists(name), false, `${name} is deleted`);
    return error;
  }

  it("rejects with JobFailedError carrying the traceback tail, for an exception, a missing script and a missing entry", async () => {
    // Arrange
    const estimator = (scripts: string[], entry: string, workers = 1) =>
      new TFEstimator().withRuntime(runtime).setWorkerNum(workers).setTrainScripts(scripts).setTrainEntry(entry).setTrainSelectedCols(["x", "y"]).setBatchSize(4).setTimeoutMs(90_000);
    const table = Table.fromRows(schema, rowsOf(40));
    const started = Date.now();

    // Act
    const raised = estimator([FAILING], "train", 2).fit(table);
    const missingScript = estimator([`s3://${runtime.bucket}/nowhere/missing_model.py`], "train").fit(table);
    const missingEntry = estimator([COUNTING], "no_such_entry").fit(table);

    // Assert
    const [e1, e2, e3] = await Promise.all([
      assertCleanFailure(raised, [/integration test failure on purpose/, /load_weights_from_nowhere/, /FileNotFoundError/]),
      assertCleanFailure(missingScript, [/could not download the user script s3:\/\/.*missing_model\.py/, /Traceback/]),
      assertCleanFailure(missingEntry, [/'no_such_entry' is not defined in counting_model\.py/, /'train'/]),
    ]);
    for (const e of [e1, e2, e3]) assert.match(e.message, /Traceback \(most recent call last\)/, "the worker's traceback tail travels with the error");
    assert.ok(e2.member && e3.member, "the failing member is named");
    assert.ok(Date.now() - started < 90_000, "failures are reported promptly, not at the deadline");
  });

  it("fails promptly when the training entry returns without exporting a model", async () => {
    // Arrange
    const estimator = countingEstimator(runtime, "pad", 1).setTrainHyperParams({ export: false });
    const started = Date.now();

    // Act
    const fit = estimator.fit(Table.fromRows(schema, rowsOf(30)));

    // Assert
    await assertCleanFailure(fit, [/returned without calling ctx\.export\(model\)/]);
    assert.ok(Date.now() - started < 60_000, "not at the 150 s deadline");
  });

  it("rejects a local script path that does not exist before starting anything", async () => {
    // Arrange
    const list = async () => (await runtime.deps.clients.sqs.send(new ListQueuesCommand({ QueueNamePrefix: "stf-" }))).QueueUrls?.filter((u) => !u.endsWith("-dlq")) ?? [];
    const before = await list();
    const estimator = new TFEstimator().withRuntime(runtime).setTrainScripts([join(SCRIPTS, "no_such_model.py")]).setTrainSelectedCols(["x", "y"]);

    // Act
    const fit = estimator.fit(Table.fromRows(schema, rowsOf(10)));

    // Assert
    await assert.rejects(fit, (e: unknown) => e instanceof ConfigError && e.message.includes("no_such_model.py"));
    assert.deepEqual(await list(), before, "no job queue is left behind");
  });
});

describe("two fits at once, then a transform", { timeout: 4 * 60_000 }, () => {
  let scorer: TFModel | undefined;

  it("fits a training-only estimator and a full one concurrently, with their own job ids and model versions", async () => {
    // Arrange: the training-only estimator configures no inference params at all (seed issue 7)
    const table = Table.fromRows(schema, rowsOf(200));
    const trainingOnly = countingEstimator(runtime, "pad", 1).setModelId("it-training-only");
    const full = countingEstimator(runtime, "pad", 1)
      .setModelId("it-scorer")
      .setTrainHyperParams({ units: 3 })
      .setInferenceScripts([COUNTING])
      .setInferenceEntry("predict")
      .setInferenceSelectedCols(["x", "n"])
      .setInferenceOutputCols(["doubled", "total", "embedding"])
      .setInferenceOutputTypes(["INT64", "FLOAT32", "FLOAT32[3]"]);

    // Act
    const [a, b] = await Promise.all([trainingOnly.fit(table), full.fit(table)]);

    // Assert
    assert.notEqual(a.metadata.jobId, b.metadata.jobId);
    assert.notEqual(a.metadata.version, b.metadata.version);
    assert.equal(a.metadata.inference, null);
    assert.deepEqual(b.metadata.inference?.output.columns.map((c) => c.name), ["doubled", "total", "embedding"]);
    for (const model of [a, b]) {
      const published = await getJson<{ version: string }>(runtime.deps.clients, parseS3Uri(model.metadataUri));
      assert.equal(published?.value.version, model.metadata.version, `${model.metadataUri} is published`);
    }
    await assert.rejects(a.transform(Table.fromRows(schema, rowsOf(3))), ConfigError, "a training-only model says it cannot transform");
    scorer = b;
  });

  it("transforms every input row once, typed by the declared output types", async () => {
    // Arrange
    assert.ok(scorer, "the previous test fitted the model");
    const input = rowsOf(50);

    // Act
    const out = await scorer.transform(Table.fromRows(schema, input));

    // Assert
    assert.equal(out.rows.length, input.length);
    assert.deepEqual(out.schema.slice(-3), [
      { name: "doubled", dtype: "INT64", shape: "scalar" },
      { name: "total", dtype: "FLOAT32", shape: "scalar" },
      { name: "embedding", dtype: "FLOAT32", shape: { fixed: 3 } },
    ]);
    out.rows.forEach((row, i) => {
      assert.equal(row.n, input[i]!.n, "rows keep their order");
      assert.equal(typeof row.doubled, "bigint");
      assert.equal(row.doubled, (input[i]!.n as bigint) * 2n);
      assert.equal(typeof row.total, "number");
      assert.ok(Math.abs((row.total as number) - 1) < 1e-6, `x sums to 1, got ${row.total}`);
      assert.ok(Array.isArray(row.embedding) && row.embedding.length === 3 && row.embedding.every((v) => typeof v === "number" && Number.isFinite(v)));
    });
  });

  it("trains on every row of a CSV table and of a TFRecord table read from S3, as of the same rows in memory", async () => {
    // Arrange: the same 40 rows in the two formats besides JSON Lines the readers take (src/codec/table-rows.ts).
    const input = rowsOf(40);
    const prefix = `tables/${Date.now().toString(36)}`;
    const csv = ["x,y,n", ...input.map((r) => `${(r.x as number[]).join(" ")},${r.y},${r.n}`)].join("\n");
    const encoder = createEncoder(schema);
    await putObject(runtime.deps.clients, { bucket: runtime.bucket, key: `${prefix}/csv/part-0.csv` }, csv);
    await putObject(runtime.deps.clients, { bucket: runtime.bucket, key: `${prefix}/tfrecord/part-0.tfrecord` }, frameRecords(input.map((r, i) => encoder.encode(r, i))));
    const ids = (reports: readonly DatasetReport[]) => reports.flatMap((r) => r.ids).sort((a, b) => a - b);

    // Act
    const [fromMemory, fromCsv, fromTfRecord] = await Promise.all([
      fitAndCount(countingEstimator(runtime, "pad", 1), Table.fromRows(schema, input)),
      fitAndCount(countingEstimator(runtime, "pad", 1), Table.fromS3(`s3://${runtime.bucket}/${prefix}/csv/`, schema)),
      fitAndCount(countingEstimator(runtime, "pad", 1), Table.fromS3(`s3://${runtime.bucket}/${prefix}/tfrecord/`, schema)),
    ]);

    // Assert: each row once, the same rows whatever the format.
    assert.equal(total(fromCsv.reports, "real_rows"), input.length);
    assert.equal(total(fromTfRecord.reports, "real_rows"), input.length);
    assert.deepEqual(ids(fromCsv.reports), ids(fromMemory.reports));
    assert.deepEqual(ids(fromTfRecord.reports), ids(fromMemory.reports));
    assert.equal(new Set(ids(fromCsv.reports)).size, input.length, "no row twice");
  });
});
