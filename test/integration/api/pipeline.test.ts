/**
 * Issue #6 pipelines through the public API on the local runtime: TS stages around TF stages,
 * two TF stages in one fit, two pipelines fitted at once, save/load to S3 and a local folder.
 * One runtime for the file; digits data of the demo (scikit-learn's, no download).
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ArgMax, LocalRuntime, Pipeline, PipelineModel, StandardScaler, TFEstimator, TFModel, Table, loadStage, schemaOf, type Row } from "../../../src/index.ts";
import { prepareDigits } from "../../../demo/digits-data.ts";
import type { WorkerProgress } from "../../../src/workers/launcher.ts";
import { projectRoot } from "../../../src/workers/paths.ts";

const SCRIPT = join(projectRoot, "demo", "pipeline_model.py");
const schema = schemaOf({ pixels: "FLOAT32[64]", label: "INT64" });
const TIMEOUT_MS = 150_000;

let runtime: LocalRuntime;
let trainRows: readonly Row[];
let testRows: readonly Row[];

before(async () => {
  ({ trainRows, testRows } = prepareDigits(mkdtempSync(join(tmpdir(), "stf-digits-"))));
  runtime = await LocalRuntime.start();
});

after(async () => {
  await runtime.close();
});

function classifier(modelId: string, inputCol: string, outputCol: string, width: number, hp: Record<string, unknown> = {}): TFEstimator {
  return new TFEstimator()
    .setWorkerNum(1)
    .setTrainScripts([SCRIPT])
    .setTrainHyperParams({ input_col: inputCol, epochs: 8, ...hp })
    .setTrainSelectedCols([inputCol, hp.label_col ? String(hp.label_col) : "label"])
    .setBatchSize(32)
    .setRemainder("pad")
    .setInferenceScripts([SCRIPT])
    .setInferenceHyperParams({ input_col: inputCol, output_col: outputCol })
    .setInferenceSelectedCols([inputCol])
    .setInferenceOutputCols([outputCol])
    .setInferenceOutputTypes([`FLOAT32[${width}]`])
    .setModelId(modelId)
    .setTimeoutMs(TIMEOUT_MS);
}

const accuracy = (t: Table, predicted: string, truth: string) => t.rows.filter((r) => BigInt(r[predicted] as bigint) === BigInt(r[truth] as bigint)).length / t.rows.length;
const jobsOf = (events: WorkerProgress[], kind: string) => new Set(events.filter((p) => p.kind === kind).map((p) => p.job)).size;

describe("a pipeline of TS and TF stages", { timeout: 3 * TIMEOUT_MS }, () => {
  let fitted: PipelineModel;

  it("fits two TF stages in one call (two trainings, the first model's inference feeding the second) between a scaler and an argmax", async () => {
    const events: WorkerProgress[] = [];
    const pipeline = new Pipeline([
      new StandardScaler().setInputCol("pixels").setOutputCol("pixels"),
      classifier("pipeline-first", "pixels", "logits", 10),
      classifier("pipeline-second", "logits", "refined", 10, { epochs: 5 }),
      new ArgMax().setInputCol("refined").setOutputCol("digit"),
    ]).withRuntime(runtime);
    fitted = await pipeline.fit(Table.fromRows(schema, trainRows), { onProgress: (p) => void events.push(p) });
    assert.equal(jobsOf(events, "train"), 2, "two training jobs");
    assert.equal(jobsOf(events, "predict"), 1, "the first model transformed the table for the second stage");
    const transformEvents: WorkerProgress[] = [];
    const scored = await fitted.transform(Table.fromRows(schema, testRows), { onProgress: (p) => void transformEvents.push(p) });
    assert.equal(jobsOf(transformEvents, "predict"), 2, "both TF models ran in the fitted pipeline's transform");
    assert.deepEqual(scored.schema.map((c) => c.name), ["label", "pixels", "logits", "refined", "digit"]);
    const acc = accuracy(scored, "digit", "label");
    console.log(`[pipeline] scaler -> TF -> TF -> argmax: held-out accuracy ${acc.toFixed(4)}`);
    assert.ok(acc > 0.9, `accuracy ${acc}`);
  });

  it("saves to S3 and to a local folder, and each loaded copy transforms to the same output", async () => {
    assert.ok(fitted, "needs the fitted pipeline");
    const input = Table.fromRows(schema, testRows.slice(0, 100));
    const expected = await fitted.transform(input);
    const s3Uri = `s3://${runtime.bucket}/pipelines/test-${Date.now()}`;
    const localDir = mkdtempSync(join(tmpdir(), "stf-pipeline-model-"));
    await fitted.save(s3Uri, { runtime });
    await fitted.save(localDir, { runtime });
    for (const uri of [s3Uri, localDir]) {
      const loaded = await loadStage(uri, { runtime });
      assert.ok(loaded instanceof PipelineModel);
      assert.ok(loaded.stages[1] instanceof TFModel && loaded.stages[1].metadataUri === (fitted.stages[1] as TFModel).metadataUri, "a TF model stays metadata pointing at its weights");
      const got = await loaded.transform(input);
      assert.deepEqual(got.schema, expected.schema);
      assert.equal(expected.rows.length, 100, "the fitted pipeline scored every input row");
      assert.equal(got.rows.length, expected.rows.length, "the loaded copy scores as many rows");
      got.rows.forEach((row, i) => {
        const want = expected.rows[i]!;
        assert.deepEqual(row.pixels, want.pixels, "the scaler's output is bit for bit the same");
        assert.equal(row.digit, want.digit);
        for (const col of ["logits", "refined"]) {
          (row[col] as number[]).forEach((v, k) => assert.ok(Math.abs(v - (want[col] as number[])[k]!) < 1e-5, `${col}[${k}] of row ${i}`));
        }
      });
    }
  });
});

describe("two pipelines fitted at the same time", { timeout: TIMEOUT_MS }, () => {
  it("do not interfere: each learns its own labels", async () => {
    // The second pipeline learns a shifted label: if any job read the other's queues or model, it could not.
    const shifted = (rows: readonly Row[]) => rows.map((r) => ({ ...r, shifted: (BigInt(r.label as bigint) + 1n) % 10n }));
    const shiftedSchema = schemaOf({ pixels: "FLOAT32[64]", label: "INT64", shifted: "INT64" });
    const make = (id: string, labelCol: string) =>
      new Pipeline([new StandardScaler().setInputCol("pixels").setOutputCol("scaled"), classifier(id, "scaled", "logits", 10, { label_col: labelCol, epochs: 6 }), new ArgMax().setInputCol("logits").setOutputCol("digit")]).withRuntime(runtime);
    const [plain, shift] = await Promise.all([
      make("concurrent-plain", "label").fit(Table.fromRows(shiftedSchema, shifted(trainRows))),
      make("concurrent-shift", "shifted").fit(Table.fromRows(shiftedSchema, shifted(trainRows))),
    ]);
    const test = Table.fromRows(shiftedSchema, shifted(testRows));
    const [a, b] = await Promise.all([plain.transform(test), shift.transform(test)]);
    console.log(`[pipeline] concurrent: plain ${accuracy(a, "digit", "label").toFixed(4)} on label, shifted ${accuracy(b, "digit", "shifted").toFixed(4)} on label+1`);
    assert.ok(accuracy(a, "digit", "label") > 0.85);
    assert.ok(accuracy(b, "digit", "shifted") > 0.85);
    assert.notEqual((plain.stages[1] as TFModel).metadata.jobId, (shift.stages[1] as TFModel).metadata.jobId);
  });
});
