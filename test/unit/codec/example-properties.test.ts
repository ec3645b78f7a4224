import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { createDecoder, createEncoder } from "../../../src/codec/example.ts";
import { DecodeError, SchemaError } from "../../../src/codec/errors.ts";
import { DTYPES, type Column, type Dtype, type Shape } from "../../../src/codec/schema.ts";
import { frameRecords, unframeRecords } from "../../../src/codec/tfrecord.ts";

const valueOf: Record<Dtype, fc.Arbitrary<unknown>> = {
  FLOAT32: fc.float(), // includes NaN, ±Infinity, -0 and subnormals: all float32, so they round-trip exactly
  FLOAT64: fc.double(),
  INT32: fc.integer(),
  INT64: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  STRING: fc.string({ unit: "binary", maxLength: 12 }),
  BYTES: fc.uint8Array({ maxLength: 12 }),
};

const shape: fc.Arbitrary<Shape> = fc.oneof(fc.constant("scalar" as const), fc.constant("var" as const), fc.nat({ max: 4 }).map((n) => ({ fixed: n })));

const column: fc.Arbitrary<Column> = fc.record({
  name: fc.string({ unit: "binary", minLength: 1, maxLength: 6 }),
  dtype: fc.constantFrom(...DTYPES),
  shape,
});

function rowFor(columns: readonly Column[]): fc.Arbitrary<Record<string, unknown>> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const c of columns) {
    const one = valueOf[c.dtype];
    fields[c.name] = c.shape === "scalar" ? one : c.shape === "var" ? fc.array(one, { maxLength: 5 }) : fc.array(one, { minLength: c.shape.fixed, maxLength: c.shape.fixed });
  }
  return fc.record(fields);
}

const schemaAndRow = fc.uniqueArray(column, { selector: (c) => c.name, maxLength: 6 }).chain((columns) => rowFor(columns).map((row) => ({ columns, row })));

const onlyTypedErrors = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof DecodeError || e instanceof SchemaError)) throw e;
  }
};

describe("coding properties", () => {
  it("decode(encode(row)) gives the row back for every dtype and shape", () => {
    fc.assert(
      fc.property(schemaAndRow, ({ columns, row }) => {
        const bytes = createEncoder(columns).encode(row);
        // fc.record builds null-prototype objects; the decoder returns plain ones.
        assert.deepEqual(createDecoder(columns).decode(bytes), { ...row });
      }),
      { numRuns: 500 },
    );
  });

  it("encoding is deterministic whatever the column order", () => {
    fc.assert(
      fc.property(schemaAndRow, ({ columns, row }) => {
        assert.deepEqual(createEncoder([...columns].reverse()).encode(row), createEncoder(columns).encode(row));
      }),
      { numRuns: 200 },
    );
  });

  it("decoding arbitrary bytes throws nothing but DecodeError or SchemaError", () => {
    const decoder = createDecoder([
      { name: "a", dtype: "STRING", shape: "var" },
      { name: "b", dtype: "INT32", shape: "scalar" },
    ]);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => onlyTypedErrors(() => decoder.decode(bytes))), { numRuns: 2000 });
  });

  it("decoding a valid example with random bytes flipped throws nothing but the typed errors", () => {
    fc.assert(
      fc.property(schemaAndRow, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), ({ columns, row }, flips) => {
        const bytes = new Uint8Array(createEncoder(columns).encode(row));
        for (const [at, mask] of flips) if (bytes.length) bytes[at % bytes.length]! ^= mask;
        onlyTypedErrors(() => createDecoder(columns).decode(bytes));
      }),
      { numRuns: 1000 },
    );
  });

  it("unframing arbitrary or corrupted streams throws nothing but DecodeError", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 4 }), fc.nat(), fc.integer({ min: 0, max: 255 }), (records, at, mask) => {
        const stream = frameRecords(records);
        assert.deepEqual(unframeRecords(stream), records.map((r) => new Uint8Array(r)));
        if (stream.length) stream[at % stream.length]! ^= mask;
        try {
          unframeRecords(stream);
        } catch (e) {
          if (!(e instanceof DecodeError)) throw e;
        }
      }),
      { numRuns: 1000 },
    );
  });
});
