/** Where a bounded table's rows are: in memory, or objects under an S3 prefix. */
import type { Row } from "../codec/schema.ts";
import type { TableFormat } from "../codec/table-rows.ts";

export type TableSource =
  | { readonly kind: "rows"; readonly rows: readonly Row[] }
  | { readonly kind: "s3"; readonly uri: string; readonly format?: TableFormat }
  | { readonly kind: "queue"; readonly queueUrl: string };

function jsonValue(value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  if (Array.isArray(value)) return value.map(jsonValue);
  return value;
}

/** A row as JSON values: bigint (INT64) as decimal strings, bytes (BYTES) as base64, which `rowFromJson` reads back. */
export function rowToJsonValues(row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(row)) out[name] = jsonValue(value);
  return out;
}

/** {@link rowToJsonValues} as JSON text. */
export function rowToJson(row: Row): string {
  return JSON.stringify(rowToJsonValues(row));
}
