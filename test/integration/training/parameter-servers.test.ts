/**
 * Parameter-server training (issue #17) through the public API on the local runtime: digits with
 * 2 workers and 1 parameter server. The launcher starts a chief beside them; the chief runs the
 * demo's own training entry under ParameterServerStrategy, each worker spools its feed and serves
 * the chief's steps on its own spool, and the model is checked through `transform`.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalRuntime, TFEstimator, Table, type Row } from "../../../src/index.ts";
import { DIGITS_SCHEMA as schema, demoFile, prepareDigits } from "../../../demo/digits-data.ts";
import type { WorkerProgress } from "../../../src/workers/launcher.ts";

let runtime: LocalRuntime;
let trainRows: readonly Row[];
let testRows: readonly Row[];

before(async () => {
  ({ trainRows, testRows } = prepareDigits(mkdtempSync(join(tmpdir(), "stf-ps-digits-"))));
  runtime = await LocalRuntime.start();
});

after(async () => {
  await runtime.close();
});

describe("parameter-server training", { timeout: 600_000 }, () => {
  it("fits digits with 2 workers and 1 ps, coordinated by a chief, to the demo's held-out accuracy", async () => {
    const progress: WorkerProgress[] = [];
    const model = await new TFEstimator()
      .withRuntime(runtime)
      .setWorkerNum(2)
      .setPsNum(1)
      .setTrainScripts([demoFile("digits_model.py")])
      .setTrainHyperParams({ epochs: 25, hidden: 64, learning_rate: 0.005 })
      .setTrainSelectedCols(["pixels", "label"])
      .setBatchSize(32)
      .setRemainder("pad")
      .setCheckpointEverySteps(50)
      .setInferenceScripts([demoFile("digits_model.py")])
      .setInferenceSelectedCols(["pixels"])
      .setInferenceOutputCols(["digit", "score"])
      .setInferenceOutputTypes(["INT64", "FLOAT32"])
      .setModelId("ps-digits")
      .setTimeoutMs(480_000)
      .fit(Table.fromRows(schema, trainRows), { onProgress: (p) => void progress.push(p) });

    const roles = new Set(progress.map((p) => p.member.role));
    assert.deepEqual([...roles], ["chief"], "only the chief runs the training entry, so only it reports epochs");
    const epochs = progress.filter((p) => p.epoch !== undefined);
    assert.equal(Math.max(...epochs.map((p) => Number(p.epoch))), 25);
    // Each epoch is every worker's steps: 2 workers x ceil(rows per worker / 32) under pad.
    const stepsPerEpoch = 2 * Math.ceil(Math.ceil(trainRows.length / 2) / 32);
    assert.equal(model.metadata.step, 25 * stepsPerEpoch, "the chief ran every worker's steps in every epoch");

    const scored = await model.transform(Table.fromRows(schema, testRows));
    const correct = scored.rows.filter((r) => BigInt(r.digit as bigint) === BigInt(r.label as number)).length;
    console.log(`[transcript] parameter servers: ${epochs.length} epochs, final step ${model.metadata.step}, held-out accuracy ${(correct / scored.rows.length).toFixed(4)}`);
    assert.equal(scored.rows.length, testRows.length);
    assert.ok(correct / scored.rows.length >= 0.95, `held-out accuracy ${correct}/${scored.rows.length} under the demo's bar 0.95`);
  });
});
