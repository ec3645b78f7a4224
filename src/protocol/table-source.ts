/** Where a bounded table's rows are: in memory, or objects under an S3 prefix. */
import type { Row } from "../codec/schema.ts";
import type { TableFormat } from "../codec/table-rows.ts";

export type TableSource =
  | { readonly kind: "rows"; readonly rows: readonly Row[] }
  | { readonly kind: "s3"; readonly uri: string; readonly format?: TableFormat }
  | { readonly kind: "queue"; readonly queueUrl: string };

/** JSON for rows that hold bigint (INT64) and bytes (BYTES): decimal strings and base64, which `rowFromJson` reads back. */
export function rowToJson(row: Row): string {
  return JSON.stringify(row, (_key, value: unknown) => {
    if (typeof value === "bigint") return value.toString();
    if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
    if (typeof value === "number" && !Number.isFinite(value)) return String(value);
    return value;
  });
}
