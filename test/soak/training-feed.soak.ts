/**
 * Soak, issue #8 item 2: every row of a bounded table reaches training at least once under 5 %
 * faults (TS stages and the Python workers); duplicates seen by the training script are counted.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { it } from "node:test";
import { FAULT_KINDS, injectedFaults } from "../../src/aws/faults.ts";
import { LocalRuntime, TFEstimator, Table, schemaOf } from "../../src/index.ts";
import { getJson } from "../../src/storage/objects.ts";
import { recordSoakFigures } from "./figures.ts";

process.env.SERVERLESS_TF_FAULT_RATE = "0.05";
process.env.SERVERLESS_TF_FAULT_SEED = "8020";
const ROWS = Number(process.env.SOAK_FEED_ROWS ?? 10_000);
const WORKERS = 2;

it(`feeds every one of ${ROWS} rows to training at least once under faults`, { timeout: 1_800_000 }, async () => {
  const runtime = await LocalRuntime.start();
  try {
    const schema = schemaOf({ id: "INT64", x: "FLOAT32" });
    const rows = Array.from({ length: ROWS }, (_, i) => ({ id: BigInt(i), x: i / ROWS }));

    const model = await new TFEstimator()
      .withRuntime(runtime)
      .setWorkerNum(WORKERS)
      .setTrainScripts([join(import.meta.dirname, "scripts", "feed_ids.py")])
      .setTrainSelectedCols(["id", "x"])
      .setBatchSize(50)
      .setRemainder("pad")
      .setModelId(`soak-feed-${Date.now().toString(36)}`)
      .setTimeoutMs(1_500_000)
      .fit(Table.fromRows(schema, rows));
    const jobId = model.metadata.jobId;
    const consumed: number[] = [];
    for (let w = 0; w < WORKERS; w++) {
      const found = await getJson<{ ids: number[] }>(runtime.deps.clients, { bucket: runtime.bucket, key: `jobs/${jobId}/output/ids-worker-${w}.json` });
      consumed.push(...(found?.value.ids ?? []));
    }
    // pad adds zero rows (id 0) to fill the last batches; they are not duplicates of row 0
    const padded = consumed.length - new Set(consumed).size;
    const unique = new Set(consumed);
    const lost = rows.filter((r) => !unique.has(Number(r.id))).length;
    const figures = { rowsIn: ROWS, rowsConsumed: consumed.length, unique: unique.size, duplicatesOrPadding: padded, lost, injectedFaults: FAULT_KINDS.reduce((n, k) => n + injectedFaults[k], 0) };
    recordSoakFigures("training-feed", figures);
    assert.equal(lost, 0, "every row reached training at least once");
  } finally {
    await runtime.close();
  }
});
