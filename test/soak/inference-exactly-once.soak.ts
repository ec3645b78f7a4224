/** Soak, issue #8 item 1: 10,000 rows through the SQS inference path under 5 % faults and a 3 s visibility timeout. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { runExactlyOnce, serveScaleModel } from "../helpers/inference-load.ts";
import { recordSoakFigures } from "./figures.ts";

process.env.SERVERLESS_TF_FAULT_RATE = "0.05";
process.env.SERVERLESS_TF_FAULT_SEED = "8010";
const ROWS = Number(process.env.SOAK_ROWS ?? 10_000);

it(`answers each of ${ROWS} row ids exactly once under faults and redeliveries`, { timeout: 3_600_000 }, async () => {
  const s = await serveScaleModel({ modelId: `soak-once-${Date.now().toString(36)}`, concurrency: 4, visibilityTimeoutSeconds: 3 });
  try {
    const f = await runExactlyOnce(s, ROWS, { timeoutMs: 3_000_000, settleMs: 10_000 });
    recordSoakFigures("inference-exactly-once", { ...f });
    assert.deepEqual([f.rowsOut, f.lost, f.duplicates, f.wrong, f.dlq], [ROWS, 0, 0, 0, 0]);
    assert.ok(f.service.redelivered > 0, "some messages came back while or after they were served");
  } finally {
    await s.close();
  }
});
