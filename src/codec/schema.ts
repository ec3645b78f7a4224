/**
 * Column schema shared by the encoder, the decoder and the Python worker (docs/protocol.md, `Column`).
 */
import { SchemaError } from "./errors.ts";

export const DTYPES = ["FLOAT32", "FLOAT64", "INT32", "INT64", "STRING", "BYTES"] as const;
export type Dtype = (typeof DTYPES)[number];

/** `scalar`: exactly one value; `var`: a list of any length; `{fixed: n}`: a list of exactly n values. */
export type Shape = "scalar" | "var" | { readonly fixed: number };

export interface Column {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: Shape;
}

/** The JS type of one value of each dtype, both when encoding and as decoded. */
export interface DtypeValue {
  FLOAT32: number;
  FLOAT64: number;
  INT32: number;
  INT64: bigint;
  STRING: string;
  BYTES: Uint8Array;
}

/** A value of a column, as the decoder returns it: one value for `scalar`, an array otherwise. */
export type ColumnValue = number | bigint | string | Uint8Array | number[] | bigint[] | string[] | Uint8Array[];

/** A row: column name to value. Rows may carry more columns than the schema; extra ones are ignored. */
export type Row = Readonly<Record<string, unknown>>;

const SHAPE_HELP = `"scalar", "var" or {"fixed": n} with n a non-negative integer`;

function parseShape(name: string, shape: unknown): Shape {
  if (shape === "scalar" || shape === "var") return shape;
  if (typeof shape === "object" && shape !== null && !Array.isArray(shape)) {
    const keys = Object.keys(shape);
    const n = (shape as { fixed?: unknown }).fixed;
    if (keys.length === 1 && keys[0] === "fixed" && typeof n === "number" && Number.isSafeInteger(n) && n >= 0) {
      return { fixed: n };
    }
  }
  throw new SchemaError(name, undefined, `shape ${SHAPE_HELP}`, shape, "set the column's shape to one of the allowed forms");
}

/**
 * Validate a JSON column list (as found in a JobSpec) into typed columns.
 * Throws {@link SchemaError} naming the column, the field, the value received and what is allowed.
 *
 * @example
 * ```ts
 * const columns = parseColumns([{ name: "pixels", dtype: "FLOAT32", shape: { fixed: 64 } }]);
 * ```
 */
export function parseColumns(json: unknown): Column[] {
  if (!Array.isArray(json)) {
    throw new SchemaError("<columns>", undefined, "an array of {name, dtype, shape}", json, "pass the column list as a JSON array");
  }
  const seen = new Set<string>();
  return json.map((item: unknown, i): Column => {
    const label = `#${i}`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      throw new SchemaError(label, undefined, "an object {name, dtype, shape}", item, "describe every column as an object");
    }
    const { name, dtype, shape } = item as Record<string, unknown>;
    if (typeof name !== "string" || name.length === 0) {
      throw new SchemaError(label, undefined, "field name: a non-empty string", name, "give the column a name");
    }
    if (seen.has(name)) {
      throw new SchemaError(name, undefined, "field name: unique within the column list", name, "remove or rename the duplicate column");
    }
    seen.add(name);
    if (typeof dtype !== "string" || !(DTYPES as readonly string[]).includes(dtype)) {
      throw new SchemaError(name, undefined, `field dtype: one of ${DTYPES.join(", ")}`, dtype, "use one of the allowed dtypes");
    }
    return { name, dtype: dtype as Dtype, shape: parseShape(name, shape) };
  });
}

/** Human description of what a column holds, used in error messages. */
export function describeColumn(column: Column): string {
  const shape = column.shape;
  const one = dtypeDescription(column.dtype);
  if (shape === "scalar") return `one ${one}`;
  if (shape === "var") return `an array of ${one} values (any length)`;
  return `an array of exactly ${shape.fixed} ${one} values`;
}

export function dtypeDescription(dtype: Dtype): string {
  switch (dtype) {
    case "FLOAT32":
      return "FLOAT32 (a number within float32 range, or NaN/±Infinity)";
    case "FLOAT64":
      return "FLOAT64 (a number)";
    case "INT32":
      return "INT32 (an integer number in [-2147483648, 2147483647])";
    case "INT64":
      return "INT64 (a bigint in [-2^63, 2^63-1], or a safe-integer number)";
    case "STRING":
      return "STRING (a string)";
    case "BYTES":
      return "BYTES (a Uint8Array)";
  }
}
