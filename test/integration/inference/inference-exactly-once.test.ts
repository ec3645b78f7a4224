/**
 * Issue #8, exactly-once inference (the fast version; test/soak runs 10,000 rows): rows with ids
 * through input queue -> event source (4 pollers) -> inference function -> output queue, under
 * 5 % injected AWS faults in the runtime's clients and the engine process, with a 2 s visibility
 * timeout so messages come back while they are being served. The output ids equal the input ids,
 * each once.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { runExactlyOnce, serveScaleModel, type Served } from "../../helpers/inference-load.ts";

process.env.SERVERLESS_TF_FAULT_RATE = "0.05";
process.env.SERVERLESS_TF_FAULT_SEED = "8001";

describe("exactly-once inference under faults and redeliveries", { timeout: 120_000 }, () => {
  let s: Served;

  before(async () => {
    s = await serveScaleModel({ modelId: `once-${Date.now().toString(36)}`, concurrency: 4, visibilityTimeoutSeconds: 2 });
  });

  after(async () => {
    await s?.close();
  });

  it("answers each of 300 row ids exactly once, none lost, none twice, none dead-lettered", async () => {
    // Act
    const f = await runExactlyOnce(s, 300, { timeoutMs: 90_000, settleMs: 4_000 });
    console.log(`[exactly-once] ${JSON.stringify(f)}`);
    // Assert
    assert.equal(f.lost, 0, "no row lost");
    assert.equal(f.duplicates, 0, "no row answered twice");
    assert.equal(f.wrong, 0, "every result is the model's answer for its own row");
    assert.equal(f.rowsOut, 300);
    assert.equal(f.dlq, 0, "no good row dead-lettered");
    assert.ok(f.injectedFaults > 0, "faults were injected");
    assert.deepEqual(f.inputLeft, { visible: 0, inFlight: 0 });
  });

  it("answers each of 300 row ids exactly once when they come 25 to a message", async () => {
    // Act
    const f = await runExactlyOnce(s, 300, { timeoutMs: 90_000, settleMs: 4_000, prefix: "b-", rowsPerMessage: 25 });
    console.log(`[exactly-once, 25 rows per message] ${JSON.stringify(f)}`);
    // Assert
    assert.deepEqual([f.rowsOut, f.lost, f.duplicates, f.wrong, f.dlq], [300, 0, 0, 0, 0], "every row answered once, with its own value, none dead-lettered");
    assert.deepEqual(f.inputLeft, { visible: 0, inFlight: 0 });
  });
});
