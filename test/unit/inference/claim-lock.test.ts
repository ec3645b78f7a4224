/** How long an inference invocation's claims lock their rows (functions/inference/idempotency.ts claimLockMs). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CLAIM_SKEW_MS, DEFAULT_CLAIM_LOCK_MS, claimLockMs } from "../../../functions/inference/idempotency.ts";
import { FUNCTIONS } from "../../../src/resources/definitions.ts";

describe("claimLockMs", () => {
  it("outlasts the invocation's own time left by the skew budget, so a timeout raised by sizing is covered", () => {
    assert.equal(claimLockMs(undefined, 900_000), 900_000 + CLAIM_SKEW_MS);
    assert.ok(claimLockMs(undefined, 120_000) > 120_000, "a 120 s function's claims outlast it");
  });

  it("takes the configured lock when one is set, and the default timeout's when the time left is unknown", () => {
    assert.equal(claimLockMs(2_000, 900_000), 2_000);
    assert.equal(claimLockMs(undefined, undefined), DEFAULT_CLAIM_LOCK_MS);
    assert.equal(claimLockMs(undefined, Number.POSITIVE_INFINITY), DEFAULT_CLAIM_LOCK_MS);
    assert.equal(DEFAULT_CLAIM_LOCK_MS, FUNCTIONS.inference.timeoutSeconds * 1000 + CLAIM_SKEW_MS);
  });
});
