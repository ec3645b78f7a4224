/** Rows as JSON values (src/protocol/table-source.ts): what every message with rows carries, and what `rowFromJson` reads back. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { rowFromJson } from "../../../src/codec/table-rows.ts";
import { rowToJson, rowToJsonValues } from "../../../src/protocol/table-source.ts";
import { schemaOf } from "../../../src/index.ts";

describe("rows as JSON values", () => {
  const schema = schemaOf({ n: "INT64", ns: "INT64[]", blob: "BYTES", score: "FLOAT32", scores: "FLOAT32[2]", tag: "STRING" });
  const row = { n: 9007199254740993n, ns: [1n, -2n], blob: new Uint8Array([0, 255, 65]), score: Number.NaN, scores: [0.5, Number.POSITIVE_INFINITY], tag: "é" };

  it("writes INT64 as decimal strings, bytes as base64 and non-finite floats as their names, in lists too", () => {
    assert.deepEqual(rowToJsonValues(row), { n: "9007199254740993", ns: ["1", "-2"], blob: "AP9B", score: "NaN", scores: [0.5, "Infinity"], tag: "é" });
  });

  it("is the parsed form of rowToJson, and rowFromJson reads it back to the same typed row", () => {
    assert.deepEqual(rowToJsonValues(row), JSON.parse(rowToJson(row)));
    const back = rowFromJson(rowToJsonValues(row), schema, 0);
    assert.equal(back.n, row.n);
    assert.deepEqual(back.ns, row.ns);
    assert.deepEqual(back.blob, row.blob);
    assert.ok(Number.isNaN(back.score as number));
    assert.deepEqual(back.scores, row.scores);
  });
});
