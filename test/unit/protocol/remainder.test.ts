import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planSteps, RemainderError } from "../../../src/protocol/remainder.ts";

describe("planSteps", () => {
  const rows = [500, 500];

  it("drops the remainder so every worker runs the same full steps", () => {
    assert.deepEqual(planSteps(rows, 3, { policy: "drop" }), { steps: 166, rowsSeen: 996 });
  });

  it("pads to the longest worker so no real row is lost", () => {
    assert.deepEqual(planSteps([501, 499], 3, { policy: "pad" }), { steps: 167, rowsSeen: 1000 });
  });

  it("flushes short last batches so every real row is seen in the same number of steps", () => {
    assert.deepEqual(planSteps([501, 499], 3, { policy: "flush", afterMs: 100 }), { steps: 167, rowsSeen: 1000 });
  });

  it("refuses flush when a worker has fewer rows than steps, and says which policy to use", () => {
    assert.throws(() => planSteps([10, 1], 2, { policy: "flush", afterMs: 0 }), (e: unknown) => e instanceof RemainderError && /worker-1 has 1/.test(e.message) && /pad/.test(e.message));
  });

  it("rejects a batch size that is not a positive integer", () => {
    assert.throws(() => planSteps(rows, 0, { policy: "drop" }), RemainderError);
  });
});
