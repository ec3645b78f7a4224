/**
 * The SQS inference function through the local runtime's event source: typed results with
 * row id and version, bad rows dead-lettered with their reason, immediate results, and a
 * version switch without a restart. One engine process (one TensorFlow import) for the file.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { InferenceClient, receiveRejected } from "../../../src/api/inference-client.ts";
import { LocalRuntime, type ServedModel } from "../../../src/runtime/local-runtime.ts";
import { queueDepth } from "../../../src/jobs/queues.ts";
import { SCALE_MODEL, percentile, publishSavedModel, publishScaleModel, saveScaleModels } from "../../helpers/models.ts";

describe("inference function", () => {
  let runtime: LocalRuntime;
  let served: ServedModel;
  let client: InferenceClient;
  let dirs: string[];
  const modelId = `scale-${Date.now().toString(36)}`;

  before(async () => {
    runtime = await LocalRuntime.start();
    dirs = saveScaleModels([1, 2]);
    await publishScaleModel(runtime.deps.clients, runtime.bucket, modelId, dirs[0]!);
    served = await runtime.serveModel(modelId, { recheckMs: 300 });
    client = new InferenceClient(runtime.deps.clients, served.inputQueueUrl, served.outputQueueUrl);
    await client.send("warm-up", { x: 1 });
    await client.result("warm-up", 60_000); // the engine's TensorFlow import and model load
  });

  after(async () => {
    await served?.stop();
    await runtime?.close();
  });

  it("answers good rows once and dead-letters bad ones with a machine-readable reason, without retrying the good ones", async () => {
    // Arrange: one batch of three good rows, a value of the wrong type and a body that is not a row message
    const bodies = [
      { v: 1, id: "g1", row: { x: 1.5 } },
      { v: 1, id: "bad-type", row: { x: "abc" } },
      { v: 1, id: "g2", row: { x: -2 } },
      "not json",
      { v: 1, id: "g3", row: { x: 0, extra: "ignored" } },
    ];
    // Act
    await runtime.deps.clients.sqs.send(
      new SendMessageBatchCommand({ QueueUrl: served.inputQueueUrl, Entries: bodies.map((b, i) => ({ Id: String(i), MessageBody: typeof b === "string" ? b : JSON.stringify(b) })) }),
    );
    const results = await Promise.all(["g1", "g2", "g3"].map((id) => client.result(id)));
    const rejected = await receiveRejected(runtime.deps.clients, served.dlqUrl, 2);
    // Assert
    assert.deepEqual(results.map((r) => r.row.y), [1.5, -2, 0]);
    assert.ok(results.every((r) => r.modelId === modelId && r.version.endsWith("test-publish")));
    const byRow = new Map(rejected.map((r) => [r.reason.row, r.reason]));
    assert.equal(byRow.get("bad-type")?.error, "SchemaError");
    assert.equal(byRow.get("bad-type")?.column, "x");
    assert.match(byRow.get("bad-type")?.expected ?? "", /FLOAT32/);
    assert.equal(byRow.get("bad-type")?.received, '"abc"');
    assert.equal(byRow.get(null)?.error, "EventShapeError");
    assert.equal(rejected.find((r) => r.reason.row === null)?.body, "not json");
    assert.deepEqual(await queueDepth(runtime.deps.clients, served.inputQueueUrl), { visible: 0, inFlight: 0 });
    assert.equal(await client.poll(1), 0, "no result twice");
  });

  it("sends each result before the next record is sent (20 records, each sent only once the one before is answered)", async () => {
    // A result held until the next record arrives would never come: each wait would time out.
    // How fast results come is the bench's (npm run bench: inference latency p50/p99), not a pass/fail.
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const sentAt = await client.send(`t${i}`, { x: i });
      const result = await client.result(`t${i}`, 30_000);
      latencies.push(result.receivedAt - sentAt);
      assert.equal(result.row.y, i);
    }
    console.log(`send -> result latency over 20 records: p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms (max ${Math.max(...latencies)} ms)`);
  });

  it("moves to a new version when latest.json moves, without a restart and without losing a row", async () => {
    // Arrange: rows keep coming while version 2 (y = 2x) is published
    const sent: string[] = [];
    let publishAt = -1;
    // Act
    for (let i = 0; i < 30; i++) {
      if (i === 8) {
        await publishScaleModel(runtime.deps.clients, runtime.bucket, modelId, dirs[1]!);
        publishAt = i;
      }
      await client.send(`v${i}`, { x: 1 });
      sent.push(`v${i}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const results = await Promise.all(sent.map((id) => client.result(id, 20_000)));
    // Assert: every row answered once, by version 1 then version 2 and never back
    const versions = results.map((r) => r.version);
    const switchAt = versions.findIndex((v) => v !== versions[0]);
    assert.ok(publishAt > 0 && switchAt >= publishAt, `switched at row ${switchAt}, after the publication at row ${publishAt}`);
    assert.ok(versions.slice(switchAt).every((v) => v === versions[switchAt]), "no row served by the old version after the switch");
    assert.deepEqual(results.map((r) => r.row.y), results.map((_, i) => (i < switchAt ? 1 : 2)));
    assert.equal(await client.poll(1), 0, "no result twice");
  });

  it("runs the user's inference code with no credentials or stack settings in its environment, on files the function staged", async () => {
    // Arrange: an entry that answers with the number of AWS_* and SERVERLESS_TF_* variables it can see.
    const probeId = `${modelId}-env`;
    const x = { name: "x", dtype: "FLOAT32", shape: "scalar" } as const;
    await publishSavedModel(runtime.deps.clients, runtime.bucket, probeId, dirs[0]!, { script: SCALE_MODEL, entry: "predict_reporting_env", input: [x], output: [{ ...x, name: "y" }] });
    const probe = await runtime.serveModel(probeId, { recheckMs: 60_000 });
    try {
      const probeClient = new InferenceClient(runtime.deps.clients, probe.inputQueueUrl, probe.outputQueueUrl);

      // Act
      await probeClient.send("env", { x: 1 });
      const answer = await probeClient.result("env", 60_000);

      // Assert: this process has both (the emulator's credentials, the table), the engine neither.
      assert.ok(Object.keys(process.env).some((k) => k.startsWith("AWS_")), "the test process itself has AWS settings");
      assert.equal(answer.row.y, 0, "the engine saw credentials or stack settings");
    } finally {
      await probe.stop();
    }
  });
});
