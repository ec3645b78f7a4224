/**
 * An inference claim held while its batch runs (functions/inference/idempotency.ts HeldClaims),
 * on the emulator's DynamoDB: renewed past its lock, so a redelivery cannot take it over; not
 * owned once it is gone, so its results are not sent.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { createAwsClients, destroyAwsClients } from "../../../src/aws/clients.ts";
import { ensureRegistryTable, registryTableName } from "../../../src/registry/index.ts";
import { IdempotencyStore } from "../../../functions/inference/idempotency.ts";

const clients = createAwsClients();
const table = registryTableName();
// Long enough that a renewal round trip on a loaded emulator (CI runs TensorFlow beside it) fits in its margin.
const LOCK_MS = 4_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(() => ensureRegistryTable(clients, table));
after(() => destroyAwsClients(clients));

describe("HeldClaims", { timeout: 60_000 }, () => {
  it("keeps a claim past its lock while held, and lets a redelivery take it once the hold stops", async () => {
    // Arrange
    const store = new IdempotencyStore(clients, table, `hold-${randomUUID().slice(0, 8)}`);
    const takenAt = Date.now();
    assert.equal(await store.claim("m1", "first", LOCK_MS), "claimed");
    const held = store.hold([{ rowId: "m1", owner: "first" }], LOCK_MS, takenAt);
    // Act
    await sleep(2 * LOCK_MS);
    const whileHeld = await store.claim("m1", "second", LOCK_MS);
    const ownedWhileHeld = held.owned("m1");
    await held.stop();
    await sleep(LOCK_MS + 200);
    const ownedAfterStop = held.owned("m1");
    const afterStop = await store.claim("m1", "second", LOCK_MS);
    // Assert
    assert.equal(whileHeld, "busy", "the redelivery waits: the claim was renewed past its first lock");
    assert.equal(ownedWhileHeld, true);
    assert.equal(ownedAfterStop, false, "an unrenewed claim is not owned past its lock on this clock");
    assert.equal(afterStop, "claimed", "a lapsed claim is taken over");
  });

  it("stops owning a claim that was marked DONE by another handler, and keeps the others", async () => {
    // Arrange
    const store = new IdempotencyStore(clients, table, `hold-${randomUUID().slice(0, 8)}`);
    const takenAt = Date.now();
    assert.deepEqual(await store.claimAll([{ rowId: "a", owner: "me" }, { rowId: "b", owner: "me" }], LOCK_MS), ["claimed", "claimed"]);
    const held = store.hold([{ rowId: "a", owner: "me" }, { rowId: "b", owner: "me" }], LOCK_MS, takenAt);
    // Act
    await store.complete(["a"]);
    await sleep(LOCK_MS);
    const owned = { a: held.owned("a"), b: held.owned("b") };
    await held.stop();
    // Assert
    assert.deepEqual(owned, { a: false, b: true });
  });

  it("owns nothing whose lock, less the skew budget, has passed on this clock", async () => {
    // Arrange: a renewal that never answers, on a clock the test moves
    let now = 1_000_000;
    const store = new IdempotencyStore(clients, table, "unused", LOCK_MS, () => now);
    const held = store.hold([{ rowId: "x", owner: "me" }], 10_000, now);
    // Act
    now += 4_999;
    const before = held.owned("x");
    now += 2;
    const past = held.owned("x");
    await held.stop();
    // Assert: half of a 10 s lock is kept back for clock skew
    assert.deepEqual([before, past], [true, false]);
  });
});
