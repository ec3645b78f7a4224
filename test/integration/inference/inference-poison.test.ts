/**
 * Issue #8, poison messages (the fast version; test/soak runs 10,000): malformed rows of every
 * kind mixed with good ones through the SQS inference path. Each bad one is dead-lettered once,
 * with a machine-readable reason; no good row is retried, lost or dead-lettered; the engine
 * process is the same one at the end, its memory bounded.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { InferenceClient, receiveRejected } from "../../../src/api/inference-client.ts";
import { POISON_EXTRA_INPUTS, POISON_KINDS, runPoison, serveScaleModel, type Served } from "../../helpers/inference-load.ts";

describe("poison messages", { timeout: 120_000 }, () => {
  let s: Served;

  before(async () => {
    s = await serveScaleModel({ modelId: `poison-${Date.now().toString(36)}`, concurrency: 4, visibilityTimeoutSeconds: 30, extraInputs: POISON_EXTRA_INPUTS });
  });

  after(async () => {
    await s?.close();
  });

  it("dead-letters 200 malformed rows of 10 kinds with their reason and answers the 100 good rows among them once", async () => {
    // Act
    const f = await runPoison(s, 100, 200, { timeoutMs: 90_000 });
    console.log(`[poison] ${JSON.stringify(f)}`);
    // Assert
    assert.deepEqual([f.goodOut, f.goodLost, f.goodDuplicates, f.goodInDlq], [100, 0, 0, 0], "every good row answered once, none dead-lettered");
    assert.equal(f.retried, 0, "no row retried because of a bad one");
    assert.deepEqual([f.badInDlq, f.badMissing, f.unreadableReasons], [200, 0, 0], "every bad row dead-lettered with error, column, expected and received");
    for (const kind of POISON_KINDS) assert.equal(f.byKind[kind], 20, `20 dead letters of kind ${kind}`);
    assert.ok(f.enginePid.before !== undefined && f.enginePid.before === f.enginePid.after, "the engine process survived");
    if (f.engineRssMiB.before !== undefined) assert.ok(f.engineRssMiB.after! - f.engineRssMiB.before < 200, `engine RSS ${JSON.stringify(f.engineRssMiB)} MiB`);
  });

  it("serves a message of many rows whole, dead-letters its bad rows one by one with their reason, and answers the good ones in one results message", async () => {
    // Arrange: 40 good rows and 3 bad ones (a wrong type, a missing column, a duplicated id) in one message
    const client = new InferenceClient(s.clients, s.served.inputQueueUrl, s.served.outputQueueUrl);
    const good = Array.from({ length: 40 }, (_, i) => ({ id: `batch-${i}`, row: { x: i, blob: new Uint8Array([i]), tag: "t" } }));
    const bad = [
      { id: "batch-bad-type", row: { x: "seven", blob: new Uint8Array([1]), tag: "t" } },
      { id: "batch-bad-missing", row: { blob: new Uint8Array([1]), tag: "t" } },
      { id: "batch-0", row: { x: 1, blob: new Uint8Array([1]), tag: "t" } },
    ];
    const retriedBefore = s.served.service.totals.retried;

    // Act
    await client.sendRows([...good.slice(0, 20), ...bad, ...good.slice(20)]);
    const results = await Promise.all(good.map((g) => client.result(g.id, 60_000)));
    const dead = await receiveRejected(s.clients, s.served.dlqUrl, bad.length, 30_000);

    // Assert
    assert.deepEqual(results.map((r) => Number(r.row.y)), good.map((g) => g.row.x), "each good row answered with its own value");
    assert.deepEqual(dead.map((d) => d.reason.row).sort(), ["batch-0", "batch-bad-missing", "batch-bad-type"]);
    const byRow = new Map(dead.map((d) => [d.reason.row, d.reason]));
    assert.equal(byRow.get("batch-bad-type")?.error, "SchemaError");
    assert.equal(byRow.get("batch-bad-type")?.column, "x");
    assert.equal(byRow.get("batch-bad-missing")?.column, "x");
    assert.match(byRow.get("batch-0")?.column ?? "", /^rows\[\d+\]\.id$/, "the duplicated id is named by its place");
    assert.equal(s.served.service.totals.retried, retriedBefore, "no row retried because of a bad one");
  });
});
