import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createDecoder, createEncoder } from "../../../src/codec/example.ts";
import { DecodeError, SchemaError } from "../../../src/codec/errors.ts";
import { parseColumns, type Column } from "../../../src/codec/schema.ts";
import { ServerlessTfError } from "../../../src/errors.ts";
import { byteMismatch, loadVectors } from "../../vectors/vectors.ts";

const col = (name: string, dtype: Column["dtype"], shape: Column["shape"] = "scalar"): Column => ({ name, dtype, shape });

function schemaErrorOf(fn: () => unknown): SchemaError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof SchemaError, `expected a SchemaError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected a SchemaError, nothing was thrown");
}

describe("shared vectors (bytes written by TensorFlow)", () => {
  const vectors = loadVectors();

  it("has vectors to check", () => {
    assert.ok(vectors.length >= 15);
  });

  for (const v of vectors) {
    it(`encodes "${v.name}" to exactly TensorFlow's bytes`, () => {
      // Arrange
      const encoder = createEncoder(v.columns);
      // Act
      const actual = encoder.encode(v.row);
      // Assert
      assert.equal(byteMismatch(v.expected, actual), undefined);
    });

    it(`decodes TensorFlow's bytes of "${v.name}" to the logical row`, () => {
      const decoded = createDecoder(v.columns).decode(v.expected);
      // deepStrictEqual compares numbers with Object.is, so -0 and NaN are checked too.
      assert.deepEqual(decoded, v.row);
    });
  }

  it("reports a mismatch when one byte of an expected vector is changed", () => {
    // Arrange: a tampered copy of one vector's expected bytes
    const v = vectors[0]!;
    const tampered = new Uint8Array(v.expected);
    tampered[tampered.length - 1]! ^= 0x01;
    // Act
    const report = byteMismatch(tampered, createEncoder(v.columns).encode(v.row));
    // Assert
    assert.match(report ?? "", new RegExp(`bytes differ at offset ${tampered.length - 1}`));
  });
});

describe("parseColumns", () => {
  it("accepts every dtype and shape", () => {
    const columns = parseColumns([
      { name: "a", dtype: "FLOAT32", shape: "scalar" },
      { name: "b", dtype: "BYTES", shape: "var" },
      { name: "c", dtype: "INT64", shape: { fixed: 3 } },
    ]);
    assert.deepEqual(columns.map((c) => c.shape), ["scalar", "var", { fixed: 3 }]);
  });

  it("names the column, the field, the value and what is allowed for a bad dtype", () => {
    const e = schemaErrorOf(() => parseColumns([{ name: "x", dtype: "FLOAT", shape: "scalar" }]));
    assert.equal(e.column, "x");
    assert.equal(e.received, "FLOAT");
    assert.match(e.message, /dtype: one of FLOAT32, FLOAT64, INT32, INT64, STRING, BYTES/);
    assert.match(e.message, /Received: "FLOAT"/);
  });

  it("rejects a negative fixed length, a missing name, duplicates and a non-array", () => {
    assert.match(schemaErrorOf(() => parseColumns([{ name: "x", dtype: "INT64", shape: { fixed: -1 } }])).message, /shape/);
    assert.match(schemaErrorOf(() => parseColumns([{ dtype: "INT64", shape: "scalar" }])).message, /field name/);
    assert.match(schemaErrorOf(() => parseColumns([col("x", "INT64"), col("x", "INT32")])).message, /unique/);
    assert.equal(schemaErrorOf(() => parseColumns({ name: "x" })).column, "<columns>");
  });
});

describe("encoder and decoder are independent (input-only and output-only configs)", () => {
  it("encodes with only an encoder for the selected input columns", () => {
    const encoder = createEncoder([col("pixels", "FLOAT32", { fixed: 2 })]);
    assert.ok(encoder.encode({ pixels: [1, 2] }).length > 0);
  });

  it("decodes with only a decoder for the output columns, ignoring other features", () => {
    const bytes = createEncoder([col("digit", "INT64"), col("score", "FLOAT32"), col("__row_id", "INT64")]).encode({ digit: 3n, score: 0.5, __row_id: 9n });
    assert.deepEqual(createDecoder([col("digit", "INT64"), col("score", "FLOAT32")]).decode(bytes), { digit: 3n, score: 0.5 });
  });
});

describe("encoding edge cases", () => {
  const enc = (c: Column, value: unknown) => createEncoder([c]).encode({ [c.name]: value }, 4);
  const roundTrip = (c: Column, value: unknown) => createDecoder([c]).decode(enc(c, value))[c.name];

  it("throws a SchemaError naming column, row, expected and received for a missing column", () => {
    const e = schemaErrorOf(() => createEncoder([col("label", "INT64")]).encode({ other: 1 }, 12));
    assert.equal(e.column, "label");
    assert.equal(e.rowIndex, 12);
    assert.match(e.expected, /INT64/);
    assert.equal(e.received, undefined);
    assert.match(e.message, /column "label" of row 12: expected one INT64 .* Received: undefined \(missing\)\. To fix: add the column "label"/);
    assert.ok(e instanceof ServerlessTfError);
  });

  it("treats columns named like Object.prototype members as ordinary columns", () => {
    const columns = [col("constructor", "INT64"), col("__proto__", "STRING")];
    const missing = schemaErrorOf(() => createEncoder([col("constructor", "INT64")]).encode({}));
    assert.equal(missing.received, undefined); // missing, not Object.prototype.constructor
    const row = JSON.parse('{"constructor": "7", "__proto__": "x"}') as Record<string, unknown>;
    const decoded = createDecoder(columns).decode(createEncoder(columns).encode({ ...row, constructor: 7n }));
    assert.deepEqual(Object.entries(decoded), [["constructor", 7n], ["__proto__", "x"]]);
  });

  it("ignores columns of the row that are not selected", () => {
    const withExtra = createEncoder([col("a", "INT32")]).encode({ a: 1, b: "extra" });
    assert.deepEqual(withExtra, createEncoder([col("a", "INT32")]).encode({ a: 1 }));
  });

  it("carries NaN, ±Infinity and -0 in FLOAT32 bit-exact", () => {
    const out = roundTrip(col("x", "FLOAT32", "var"), [NaN, Infinity, -Infinity, -0]) as number[];
    assert.deepEqual(out, [NaN, Infinity, -Infinity, -0]);
    assert.ok(Object.is(out[3], -0));
  });

  it("keeps FLOAT64 exact where float32 would round", () => {
    assert.equal(roundTrip(col("x", "FLOAT64"), 0.1), 0.1);
  });

  it("allows an empty var list but refuses an empty list for fixed n>0 and for scalar", () => {
    assert.deepEqual(roundTrip(col("x", "STRING", "var"), []), []);
    assert.match(schemaErrorOf(() => enc(col("x", "INT64", { fixed: 2 }), [])).message, /exactly 2/);
    assert.equal(schemaErrorOf(() => enc(col("x", "INT64"), [])).column, "x");
  });

  it("allows empty strings and strings with NUL bytes", () => {
    assert.equal(roundTrip(col("s", "STRING"), ""), "");
    assert.equal(roundTrip(col("s", "STRING"), "a\u0000b"), "a\u0000b");
  });

  it("refuses a value of the wrong type", () => {
    assert.equal(schemaErrorOf(() => enc(col("x", "FLOAT32"), "1.5")).received, "1.5");
    assert.ok(schemaErrorOf(() => enc(col("x", "BYTES"), "text")));
    assert.ok(schemaErrorOf(() => enc(col("x", "STRING"), new Uint8Array(1))));
    assert.ok(schemaErrorOf(() => enc(col("x", "INT64"), 1.5)));
  });

  it("refuses INT32 values out of range", () => {
    assert.match(schemaErrorOf(() => enc(col("x", "INT32"), 2 ** 31)).message, /INT32/);
  });

  it("refuses an INT64 given as a number beyond 2^53 and says to use bigint", () => {
    assert.match(schemaErrorOf(() => enc(col("x", "INT64"), 2 ** 53 + 2)).message, /bigint/);
    assert.equal(roundTrip(col("x", "INT64"), 2n ** 53n + 1n), 2n ** 53n + 1n);
    assert.ok(schemaErrorOf(() => enc(col("x", "INT64"), 2n ** 63n)));
  });

  it("refuses a finite FLOAT32 value beyond float32 range", () => {
    assert.match(schemaErrorOf(() => enc(col("x", "FLOAT32"), 1e39)).message, /float32 range/);
  });

  it("refuses a string with an unpaired surrogate, which has no UTF-8 form", () => {
    assert.ok(schemaErrorOf(() => enc(col("s", "STRING"), "a\ud800")));
  });

  it("starts the next row clean after an error half way through a row", () => {
    const encoder = createEncoder([col("a", "INT64"), col("b", "INT64")]);
    assert.throws(() => encoder.encode({ a: 1n, b: "x" }), SchemaError);
    assert.deepEqual(encoder.encode({ a: 1n, b: 2n }), createEncoder([col("a", "INT64"), col("b", "INT64")]).encode({ a: 1n, b: 2n }));
  });
});

describe("decoding malformed or hostile bytes", () => {
  const decoder = createDecoder([col("s", "STRING")], { maxExampleBytes: 1024 });

  it("throws a DecodeError naming the column for invalid UTF-8 in a STRING", () => {
    const bytes = createEncoder([col("s", "BYTES")]).encode({ s: new Uint8Array([0xff, 0xfe]) });
    assert.throws(() => decoder.decode(bytes), (e: unknown) => e instanceof DecodeError && e.column === "s");
  });

  it("refuses an example larger than maxExampleBytes before reading it", () => {
    assert.throws(() => decoder.decode(new Uint8Array(1025)), (e: unknown) => e instanceof DecodeError && /maxExampleBytes/.test(e.message));
  });

  it("refuses group wire types, which a tf.Example never uses", () => {
    assert.throws(() => decoder.decode(new Uint8Array([0x0b, 0x0c])), (e: unknown) => e instanceof DecodeError && /group/.test(e.message));
  });

  it("reports the offset of a truncated length", () => {
    const good = createEncoder([col("s", "STRING")]).encode({ s: "hello" });
    assert.throws(() => decoder.decode(good.subarray(0, good.length - 2)), (e: unknown) => e instanceof DecodeError && e.offset > 0);
  });

  it("throws a SchemaError when the stored list kind differs from the column dtype", () => {
    const bytes = createEncoder([col("s", "INT64")]).encode({ s: 1n });
    assert.match(schemaErrorOf(() => decoder.decode(bytes, 3)).message, /row 3.*bytes_list.*int64_list/);
  });

  it("throws a SchemaError for a decoded INT32 value out of range", () => {
    const bytes = createEncoder([col("x", "INT64")]).encode({ x: 2n ** 40n });
    assert.ok(schemaErrorOf(() => createDecoder([col("x", "INT32")]).decode(bytes)));
  });
});
