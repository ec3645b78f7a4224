/** sendBatches (src/protocol/limits.ts): SendMessageBatch requests within SQS's 10 entries and 1 MiB. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SQS_MAX_BATCH_BYTES, sendBatches } from "../../../src/protocol/limits.ts";

const sizes = (batches: number[][]) => batches.map((b) => b.length);

describe("sendBatches", () => {
  it("puts at most 10 small entries in a request, in order", () => {
    const items = Array.from({ length: 23 }, (_, i) => i);
    const batches = sendBatches(items, () => 100);
    assert.deepEqual(sizes(batches), [10, 10, 3]);
    assert.deepEqual(batches.flat(), items);
  });

  it("sends messages near the 1 MiB limit one per request, not ten in one that SQS refuses", () => {
    const big = 1_000_000;
    const batches = sendBatches([big, big, big], (n) => n);
    assert.deepEqual(sizes(batches), [1, 1, 1]);
  });

  it("fills a request up to the byte budget exactly, and starts a new one past it", () => {
    const half = SQS_MAX_BATCH_BYTES / 2;
    const batches = sendBatches([half, half, 1, half], (n) => n);
    assert.deepEqual(sizes(batches), [2, 2]);
    assert.ok(batches.every((b) => b.reduce((n, x) => n + x, 0) <= SQS_MAX_BATCH_BYTES));
  });

  it("gives an entry over the budget a request of its own, and nothing for no entry", () => {
    assert.deepEqual(sizes(sendBatches([10, SQS_MAX_BATCH_BYTES + 1, 10], (n) => n)), [1, 1, 1]);
    assert.deepEqual(sendBatches([], () => 1), []);
  });
});
