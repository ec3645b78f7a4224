/**
 * Soak: 10,000 rows through the SQS inference path on the settings the stack ships: a standard
 * output queue, the input queue's visibility timeout and maxReceiveCount from servedQueuePlan, a
 * cold engine, and 5 % faults of five kinds, one of them a call that stalls for 31 s (longer than
 * the 30 s claim lock the function once had) before it goes through.
 *
 * A standard queue cannot drop a second copy: when an output send's response is lost, the SDK's
 * retry sends the batch again. So the rule for a consumer is to deduplicate results by row id
 * (docs/protocol.md, "Exactly once"). After that the output ids must equal the input ids, and
 * every duplicate must be one that a lost send response explains.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { injectedFaultsByCommand } from "../../src/aws/faults.ts";
import { servedQueuePlan } from "../../src/resources/definitions.ts";
import { runExactlyOnce, serveScaleModel } from "../helpers/inference-load.ts";
import { recordSoakFigures } from "./figures.ts";

process.env.SERVERLESS_TF_FAULT_RATE = "0.05";
process.env.SERVERLESS_TF_FAULT_SEED = "8010";
process.env.SERVERLESS_TF_FAULT_SLOW_MS = "31000";
const ROWS = Number(process.env.SOAK_ROWS ?? 10_000);

it(`answers each of ${ROWS} row ids, deduplicated by id, on the shipped queue settings under faults and 31 s stalls`, { timeout: 5_400_000 }, async () => {
  const modelId = `soak-once-${Date.now().toString(36)}`;
  const shipped = servedQueuePlan(modelId).input;
  const s = await serveScaleModel({ modelId, concurrency: 4, visibilityTimeoutSeconds: shipped.visibilityTimeoutSeconds, maxReceiveCount: shipped.maxReceiveCount, fifoOutput: false, warm: false });
  try {
    const f = await runExactlyOnce(s, ROWS, { timeoutMs: 5_000_000, settleMs: 10_000 });
    // Each output SendMessageBatch whose response was lost may put up to 10 messages of one row a second time.
    const lostSends = injectedFaultsByCommand["SendMessageBatchCommand:lost-response"] ?? 0;
    const stalls = Object.entries(injectedFaultsByCommand).filter(([k]) => k.endsWith(":slow")).reduce((n, [, v]) => n + v, 0);
    recordSoakFigures("inference-exactly-once", { ...f, lostSendResponses: lostSends, stalls, visibilityTimeoutSeconds: shipped.visibilityTimeoutSeconds, maxReceiveCount: shipped.maxReceiveCount });
    console.log(`[soak] ${f.duplicates} duplicate results; ${lostSends} output sends lost their response; ${stalls} calls stalled 31 s`);
    assert.deepEqual([f.rowsOut, f.lost, f.wrong, f.dlq], [ROWS, 0, 0, 0], "after deduplication by row id: every id once, none lost, none wrong, nothing dead-lettered");
    assert.ok(stalls > 0, "some calls stalled past the old lock");
    assert.ok(f.duplicates <= 10 * lostSends, `${f.duplicates} duplicates, more than ${lostSends} lost send responses can explain`);
  } finally {
    await s.close();
  }
});
