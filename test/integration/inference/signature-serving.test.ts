/**
 * Signature-mode serving (ONNX Runtime in the inference function, no Python) against script mode
 * (the Python inference entry) on the same fitted weights: one digits fit with
 * `setServingMode("signature")` exports the SavedModel and `model.onnx`; its version is served
 * as exported, and the same version, published without its ONNX signature under a second model
 * id, is served in script mode. Both answer the 360 held-out rows.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { moveLatest } from "../../../functions/checkpoint/publish.ts";
import type { OnnxEngine } from "../../../functions/inference/onnx-engine.ts";
import type { ServingEngines } from "../../../functions/inference/serving-engines.ts";
import { InferenceClient } from "../../../src/api/inference-client.ts";
import { LocalRuntime, TFEstimator, Table, type Row } from "../../../src/index.ts";
import { DIGITS_SCHEMA, demoFile, prepareDigits } from "../../../demo/digits-data.ts";
import { METADATA_OBJECT, newVersion, type ModelMetadata } from "../../../src/protocol/model-metadata.ts";
import { modelKeys, parseS3Uri } from "../../../src/protocol/names.ts";
import { rowToJson } from "../../../src/protocol/table-source.ts";
import { headObject, putJson } from "../../../src/storage/objects.ts";

const TIMEOUT_MS = 240_000;
const ROWS_PER_MESSAGE = 60;

let runtime: LocalRuntime;
let testRows: readonly Row[];
let fitted: ModelMetadata;

/** Publishes `metadata` as a new version of `modelId` (its artifact files shared), with `change` applied. */
async function republish(metadata: ModelMetadata, modelId: string, change: (m: ModelMetadata) => ModelMetadata): Promise<ModelMetadata> {
  const version = newVersion(metadata.jobId);
  const copy = change({ ...metadata, modelId, version });
  await putJson(runtime.deps.clients, { bucket: runtime.bucket, key: `${modelKeys.version(modelId, version)}${METADATA_OBJECT}` }, copy);
  assert.ok(await moveLatest(runtime.deps.clients, runtime.bucket, copy));
  return copy;
}

/** Sends the held-out rows in messages of rows and collects every row's result by id. */
async function answer(client: InferenceClient, tag: string): Promise<Map<string, { digit: number; score: number; version: string }>> {
  const rows = testRows.map((r, i) => ({ id: `${tag}-${i}`, row: JSON.parse(rowToJson({ pixels: r.pixels })) as Row }));
  for (let i = 0; i < rows.length; i += ROWS_PER_MESSAGE) await client.sendRows(rows.slice(i, i + ROWS_PER_MESSAGE));
  const out = new Map<string, { digit: number; score: number; version: string }>();
  for (const { id } of rows) {
    const r = await client.result(id, 120_000);
    out.set(id, { digit: Number(r.row.digit), score: Number(r.row.score), version: r.version });
  }
  return out;
}

before(async () => {
  const digits = prepareDigits(mkdtempSync(join(tmpdir(), "stf-digits-")));
  testRows = digits.testRows;
  runtime = await LocalRuntime.start();
  const model = await new TFEstimator()
    .setWorkerNum(1)
    .setTrainScripts([demoFile("digits_model.py")])
    .setTrainHyperParams({ epochs: 6 })
    .setTrainSelectedCols(["pixels", "label"])
    .setBatchSize(32)
    .setInferenceScripts([demoFile("digits_model.py")])
    .setInferenceSelectedCols(["pixels"])
    .setInferenceOutputCols(["digit", "score"])
    .setInferenceOutputTypes(["INT64", "FLOAT32"])
    .setServingMode("signature")
    .setModelId(`signature-digits-${Date.now().toString(36)}`)
    .setTimeoutMs(TIMEOUT_MS)
    .withRuntime(runtime)
    .fit(Table.fromRows(DIGITS_SCHEMA, digits.trainRows));
  fitted = model.metadata;
});

after(async () => {
  await runtime?.close();
});

describe("signature serving mode", { timeout: 3 * TIMEOUT_MS }, () => {
  it("exports model.onnx with the serving signature of the inference columns", async () => {
    assert.equal(fitted.serving?.mode, "signature");
    assert.deepEqual(fitted.serving?.inputs.map((c) => c.name), ["pixels"]);
    assert.deepEqual(fitted.serving?.outputs, [
      { name: "digit", dtype: "INT64", shape: "scalar" },
      { name: "score", dtype: "FLOAT32", shape: "scalar" },
    ]);
    const onnx = await headObject(runtime.deps.clients, parseS3Uri(fitted.serving!.onnxUri, "onnxUri"));
    assert.ok(onnx && onnx.size > 1000, `model.onnx is there (${onnx?.size} bytes)`);
    assert.match(fitted.serving!.onnxUri, new RegExp(`^s3://${runtime.bucket}/models/${fitted.modelId}/versions/${fitted.version}/`), "beside the version's SavedModel");
  });

  it("answers the 360 held-out rows as script mode does: the same digit on every row, scores within 1e-5", async () => {
    const scriptModelId = `${fitted.modelId}-script`;
    await republish(fitted, scriptModelId, ({ serving: _, ...m }) => m);
    const signature = await runtime.serveModel(fitted.modelId, { recheckMs: 500, batchSize: 10 });
    const script = await runtime.serveModel(scriptModelId, { recheckMs: 500, batchSize: 10 });
    try {
      const [bySignature, byScript] = await Promise.all([
        answer(new InferenceClient(runtime.deps.clients, signature.inputQueueUrl, signature.outputQueueUrl), "sig"),
        answer(new InferenceClient(runtime.deps.clients, script.inputQueueUrl, script.outputQueueUrl), "py"),
      ]);
      assert.equal(bySignature.size, testRows.length);
      assert.equal(testRows.length, 360);
      let worst = 0;
      let correct = 0;
      for (let i = 0; i < testRows.length; i++) {
        const s = bySignature.get(`sig-${i}`)!;
        const p = byScript.get(`py-${i}`)!;
        assert.equal(s.digit, p.digit, `row ${i}: signature ${s.digit}, script ${p.digit}`);
        worst = Math.max(worst, Math.abs(s.score - p.score));
        if (s.digit === Number(testRows[i]!.label)) correct += 1;
      }
      console.log(`[signature] 360 rows: largest score difference from script mode ${worst.toExponential(2)}; accuracy ${(correct / 360).toFixed(4)}`);
      assert.ok(worst <= 1e-5, `largest score difference ${worst}`);
      assert.ok(correct / 360 > 0.8, `the exported model classifies (accuracy ${correct / 360})`);
      const engines = signature.service.engine as ServingEngines;
      assert.ok(engines.engine("signature"), "the signature model ran on ONNX Runtime");
      assert.equal(engines.engine("script"), undefined, "and started no Python engine");
    } finally {
      await Promise.all([signature.stop(), script.stop()]);
    }
  });

  it("switches to a version published while it serves, with no restart", async () => {
    const served = await runtime.serveModel(fitted.modelId, { recheckMs: 200, batchSize: 10 });
    try {
      const client = new InferenceClient(runtime.deps.clients, served.inputQueueUrl, served.outputQueueUrl);
      await client.send("before", JSON.parse(rowToJson({ pixels: testRows[0]!.pixels })) as Row);
      const first = await client.result("before", 60_000);
      const engines = served.service.engine as ServingEngines;
      const engine = engines.engine("signature") as OnnxEngine;
      const next = await republish(fitted, fitted.modelId, (m) => m);
      assert.notEqual(next.version, first.version);
      let seen = first.version;
      for (let i = 0; seen !== next.version && i < 50; i++) {
        await new Promise((r) => setTimeout(r, 200));
        await client.send(`after-${i}`, JSON.parse(rowToJson({ pixels: testRows[i]!.pixels })) as Row);
        seen = (await client.result(`after-${i}`, 60_000)).version;
      }
      assert.equal(seen, next.version, "results come from the version published while serving");
      assert.equal(engines.engine("signature"), engine, "the same engine, not a restarted one, loaded it");
    } finally {
      await served.stop();
    }
  });
});
