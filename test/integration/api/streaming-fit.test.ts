/**
 * A streaming fit on a queue table publishes versions while it runs, and the inference
 * function follows them: its outputs move from version n to n+1 without a restart and no input
 * is lost across the switch. One worker (MultiWorkerMirroredStrategy needs equal step counts,
 * which an unbounded feed cannot promise) and one inference engine.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CreateQueueCommand, DeleteQueueCommand } from "@aws-sdk/client-sqs";
import { StreamingTFModel } from "../../../src/api/streaming-model.ts";
import { InferenceClient } from "../../../src/api/inference-client.ts";
import { modelKeys } from "../../../src/protocol/names.ts";
import { LocalRuntime, type ServedModel } from "../../../src/runtime/local-runtime.ts";
import { listKeys } from "../../../src/storage/objects.ts";
import { Table, schemaOf } from "../../../src/index.ts";
import { produceScaleRows, scaleStreamEstimator } from "../../helpers/streaming.ts";

describe("streaming fit", () => {
  let runtime: LocalRuntime;
  let served: ServedModel | undefined;
  let sourceUrl: string;
  let stopJob: (() => Promise<void>) | undefined;
  const modelId = `stream-${Date.now().toString(36)}`;

  before(async () => {
    runtime = await LocalRuntime.start(process.env.STF_TEST_LOG ? { workerLog: (l) => console.error(l) } : {});
    sourceUrl = (await runtime.deps.clients.sqs.send(new CreateQueueCommand({ QueueName: `${modelId}-source` }))).QueueUrl!;
  });

  after(async () => {
    await stopJob?.().catch(() => undefined);
    await served?.stop();
    await runtime.deps.clients.sqs.send(new DeleteQueueCommand({ QueueUrl: sourceUrl })).catch(() => undefined);
    await runtime?.close();
  });

  it("publishes versions while it runs and inference follows them without losing a row", { timeout: 150_000 }, async () => {
    // Arrange: a producer sends rows of y = 3x to the source queue, 10 every 50 ms, until told to stop
    const producer = produceScaleRows(runtime.deps.clients, sourceUrl);
    const estimator = scaleStreamEstimator(runtime, modelId);

    // Act: fit returns at the first version; serve it and send rows until a second version answers
    const model = await estimator.fit(Table.fromQueue(sourceUrl, schemaOf({ x: "FLOAT32", y: "FLOAT32" })));
    stopJob = () => (model as StreamingTFModel).job.stop();
    served = await runtime.serveModel(modelId, { recheckMs: 200 });
    const client = new InferenceClient(runtime.deps.clients, served.inputQueueUrl, served.outputQueueUrl);
    const ids: string[] = [];
    const versions: string[] = [];
    for (let i = 0; i < 400 && new Set(versions).size < 2; i++) {
      await client.send(`q${i}`, { x: 1 });
      ids.push(`q${i}`);
      versions.push((await client.result(`q${i}`, 60_000)).version);
      await new Promise((r) => setTimeout(r, 100));
    }
    await producer.stop();
    await (model as StreamingTFModel).job.stop();
    const published = (await listKeys(runtime.deps.clients, { bucket: runtime.bucket, key: modelKeys.versions(modelId) })).filter((o) => o.key.endsWith("/metadata.json"));

    // Assert
    assert.ok(model instanceof StreamingTFModel);
    assert.equal(versions.length, ids.length, "every input answered");
    assert.equal(new Set(versions).size, 2, `outputs from two versions: ${[...new Set(versions)].join(", ")}`);
    const switchAt = versions.findIndex((v) => v !== versions[0]);
    assert.ok(versions.slice(switchAt).every((v) => v === versions[switchAt]) && versions[switchAt]! > versions[0]!, "n then n+1, never back");
    assert.ok(published.length >= 2, `at least two versions published: ${published.length}`);
    assert.ok((await model.latest()).metadata.version >= versions.at(-1)!, "latest() follows the newest version");
  });
});
