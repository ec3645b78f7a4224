/**
 * The shared tf.Example vectors (examples.json, written by generate.py with TensorFlow) as TS values,
 * and the byte comparison both the unit test and the tamper test use.
 */
import { readFileSync } from "node:fs";
import { parseColumns, type Column, type ColumnValue, type Dtype } from "../../src/codec/schema.ts";

export interface JsonVector {
  readonly name: string;
  readonly columns: unknown;
  readonly row: Record<string, unknown>;
  readonly hex: string;
}

export interface Vector {
  readonly name: string;
  readonly columns: Column[];
  readonly row: Record<string, ColumnValue>;
  readonly expected: Uint8Array;
}

const SPECIAL: Record<string, number> = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity, "-0": -0 };

function valueOf(dtype: Dtype, v: unknown): number | bigint | string | Uint8Array {
  switch (dtype) {
    case "FLOAT32":
    case "FLOAT64":
      return typeof v === "string" ? (SPECIAL[v] as number) : (v as number);
    case "INT64":
      return BigInt(v as string);
    case "BYTES":
      return new Uint8Array(Buffer.from(v as string, "base64"));
    default:
      return v as number | string;
  }
}

export function loadJsonVectors(path = new URL("./examples.json", import.meta.url)): JsonVector[] {
  return (JSON.parse(readFileSync(path, "utf8")) as { vectors: JsonVector[] }).vectors;
}

/** A JSON vector with its row converted to the values the TS encoder takes and the decoder returns. */
export function toVector(json: JsonVector): Vector {
  const columns = parseColumns(json.columns);
  const row: Record<string, ColumnValue> = {};
  for (const c of columns) {
    const v = json.row[c.name];
    row[c.name] = (Array.isArray(v) ? v.map((x) => valueOf(c.dtype, x)) : valueOf(c.dtype, v)) as ColumnValue;
  }
  return { name: json.name, columns, row, expected: new Uint8Array(Buffer.from(json.hex, "hex")) };
}

export function loadVectors(): Vector[] {
  return loadJsonVectors().map(toVector);
}

/** Undefined when equal; otherwise where the bytes first differ, with both hex strings. */
export function byteMismatch(expected: Uint8Array, actual: Uint8Array): string | undefined {
  const n = Math.min(expected.length, actual.length);
  let i = 0;
  while (i < n && expected[i] === actual[i]) i++;
  if (i === n && expected.length === actual.length) return undefined;
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  return `bytes differ at offset ${i} (expected length ${expected.length}, actual ${actual.length})\n  expected ${hex(expected)}\n  actual   ${hex(actual)}`;
}
