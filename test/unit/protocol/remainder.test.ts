import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import type { RemainderPolicy } from "../../../src/protocol/spec.ts";
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

interface RemainderVector {
  readonly name: string;
  readonly rowsPerMember: readonly number[];
  readonly batchSize: number;
  readonly remainder: RemainderPolicy;
  readonly steps?: number;
  readonly rowsSeen?: number;
  readonly error?: "RemainderError";
}

const vectors = JSON.parse(readFileSync(new URL("../../vectors/remainder.json", import.meta.url), "utf8")) as RemainderVector[];

describe("planSteps against the shared remainder vectors (the Python planner reads the same file)", () => {
  it("has vectors to check", () => assert.ok(vectors.length >= 10, `${vectors.length} vectors`));

  for (const v of vectors) {
    it(v.name, () => {
      // Arrange
      const plan = () => planSteps(v.rowsPerMember, v.batchSize, v.remainder);

      // Act and assert
      if (v.error) assert.throws(plan, RemainderError);
      else assert.deepEqual(plan(), { steps: v.steps, rowsSeen: v.rowsSeen });
    });
  }
});
