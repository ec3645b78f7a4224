/**
 * Rows from the table formats a shard can hold (JSON Lines, CSV, TFRecord), turned into
 * values the tf.Example encoder takes. JSON has no 64-bit integers or bytes, so INT64 may
 * arrive as a decimal string and BYTES as base64; both are converted here, at the edge.
 */
import { parse as parseCsv } from "csv-parse/sync";
import { SchemaError } from "./errors.ts";
import type { Column, Row } from "./schema.ts";
import { ConfigError } from "../errors.ts";

export const TABLE_FORMATS = ["jsonl", "csv", "tfrecord"] as const;
export type TableFormat = (typeof TABLE_FORMATS)[number];

export function formatOfKey(key: string): TableFormat | undefined {
  if (/\.(jsonl|ndjson|json)(\.gz)?$/i.test(key)) return "jsonl";
  if (/\.csv$/i.test(key)) return "csv";
  if (/\.(tfrecord|tfrecords)$/i.test(key)) return "tfrecord";
  return undefined;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** BYTES from base64, strictly: Buffer.from(_, "base64") skips what is not base64 and decodes a truncated tail silently. */
function strictBase64(column: Column, value: string, rowIndex: number): Uint8Array {
  if (value.length % 4 !== 0 || !BASE64.test(value)) throw new SchemaError(column.name, rowIndex, "BYTES as standard base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4 characters)", value, "encode the bytes with standard padded base64");
  return new Uint8Array(Buffer.from(value, "base64"));
}

function convertScalar(column: Column, value: unknown, rowIndex: number): unknown {
  // A list inside a list fits no column; refused here, before a hostile depth reaches the encoder's recursion.
  if (Array.isArray(value)) throw new SchemaError(column.name, rowIndex, `a ${column.dtype} value or a flat list of them (no list inside a list)`, value, "flatten the value");
  if (column.dtype === "INT64" && typeof value === "string" && /^-?\d+$/.test(value)) return BigInt(value);
  if (column.dtype === "BYTES" && typeof value === "string") return strictBase64(column, value, rowIndex);
  if ((column.dtype === "FLOAT32" || column.dtype === "FLOAT64") && typeof value === "string" && /^(NaN|-?Infinity)$/.test(value)) return Number(value);
  return value;
}

/** Converts one JSON row to encoder values for the given columns; other fields pass through untouched. */
export function rowFromJson(json: unknown, columns: readonly Column[], rowIndex: number): Row {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new SchemaError("<row>", rowIndex, "a JSON object with one field per column", json, "write one JSON object per line");
  }
  const row: Record<string, unknown> = { ...(json as Record<string, unknown>) };
  for (const c of columns) {
    const v = row[c.name];
    if (v === undefined) continue; // the encoder reports the missing column with its row
    row[c.name] = Array.isArray(v) ? convertList(c, v, rowIndex) : convertScalar(c, v, rowIndex);
  }
  return row;
}

/**
 * A list's values for the encoder. A list of numbers is kept as it is (convertScalar returns a
 * number unchanged): copying it per row was most of a shard-feed's parsing (bench/feed.ts).
 */
function convertList(column: Column, list: unknown[], rowIndex: number): unknown[] {
  for (let j = 0; j < list.length; j++) {
    if (typeof list[j] !== "number") return list.map((x) => convertScalar(column, x, rowIndex));
  }
  return list;
}

export function parseJsonLines(text: string, columns: readonly Column[], firstRowIndex = 0): Row[] {
  return rowsFromLines(text.split("\n"), columns, firstRowIndex);
}

/** {@link parseJsonLines} of text already split into lines (a shard-feed's chunk). */
export function rowsFromLines(lines: readonly string[], columns: readonly Column[], firstRowIndex = 0): Row[] {
  const rows: Row[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    const rowIndex = firstRowIndex + rows.length;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (e) {
      throw new SchemaError("<row>", rowIndex, "one JSON object per line", line.length > 200 ? `${line.slice(0, 200)}...` : line, `fix line ${i + 1}: ${(e as Error).message}`);
    }
    rows.push(rowFromJson(json, columns, rowIndex));
  }
  return rows;
}

function csvCell(column: Column, cell: string, rowIndex: number): unknown {
  const isList = column.shape !== "scalar";
  if (isList) {
    const trimmed = cell.trim();
    if (trimmed.startsWith("[")) return JSON.parse(trimmed) as unknown;
    return trimmed === "" ? [] : trimmed.split(/\s+/).map((v) => csvScalar(column, v, rowIndex));
  }
  return csvScalar(column, cell, rowIndex);
}

function csvScalar(column: Column, cell: string, rowIndex: number): unknown {
  switch (column.dtype) {
    case "STRING":
      return cell;
    case "BYTES":
      return strictBase64(column, cell, rowIndex);
    case "INT64":
      return /^-?\d+$/.test(cell.trim()) ? BigInt(cell.trim()) : cell;
    default: {
      const n = Number(cell);
      return cell.trim() === "" || (Number.isNaN(n) && cell.trim() !== "NaN") ? cell : n;
    }
  }
}

/** How CSV is read: a header row, no empty lines, every record with as many cells as the header. */
export const CSV_OPTIONS = { columns: true, skip_empty_lines: true, relax_column_count: false } as const;

/** CSV with a header row; list cells are a JSON array or space-separated values. */
export function parseCsvRows(text: string, columns: readonly Column[], firstRowIndex = 0): Row[] {
  const records = parseCsv(text, CSV_OPTIONS) as Record<string, string>[];
  return records.map((record, i) => rowFromCsvRecord(record, columns, firstRowIndex + i));
}

/** One CSV record (cells by header name) as a row of `columns`. */
export function rowFromCsvRecord(record: Readonly<Record<string, string>>, columns: readonly Column[], rowIndex: number): Row {
  const row: Record<string, unknown> = { ...record };
  for (const c of columns) {
    const cell = record[c.name];
    if (cell === undefined) continue;
    try {
      row[c.name] = csvCell(c, cell, rowIndex);
    } catch (e) {
      if (e instanceof SchemaError) throw e;
      throw new SchemaError(c.name, rowIndex, "a JSON array or space-separated values", cell, "fix the cell");
    }
  }
  return row;
}


export function checkFormat(format: string): TableFormat {
  if (!(TABLE_FORMATS as readonly string[]).includes(format)) throw new ConfigError("format", format, `one of ${TABLE_FORMATS.join(", ")}`);
  return format as TableFormat;
}
