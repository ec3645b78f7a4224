/**
 * A table: a schema and where the rows are. Bounded tables hold rows in memory or name an
 * S3 prefix of JSON Lines, CSV or TFRecord objects; an unbounded table is a queue.
 */
import type { Column, Row } from "../codec/schema.ts";
import { DTYPES, parseColumns, type Dtype } from "../codec/schema.ts";
import { ConfigError } from "../errors.ts";
import { checkFormat, type TableFormat } from "../codec/table-rows.ts";
import { parseS3Uri } from "../protocol/names.ts";
import type { TableSource } from "../protocol/table-source.ts";

/**
 * A column type written as text: `FLOAT32`, `INT64`, a fixed list `FLOAT32[64]`, a variable list `STRING[]`.
 *
 * @example
 * columnOf("pixels", "FLOAT32[64]"); // { name: "pixels", dtype: "FLOAT32", shape: { fixed: 64 } }
 */
export function columnOf(name: string, type: string): Column {
  const match = /^([A-Z0-9]+)(?:\[(\d*)\])?$/.exec(type.trim());
  if (!match || !(DTYPES as readonly string[]).includes(match[1]!)) {
    throw new ConfigError(`type of column ${name}`, type, `one of ${DTYPES.join(", ")}, optionally with [n] (fixed list) or [] (variable list)`);
  }
  const dtype = match[1] as Dtype;
  const shape = match[2] === undefined ? "scalar" : match[2] === "" ? "var" : { fixed: Number(match[2]) };
  return parseColumns([{ name, dtype, shape }])[0]!;
}

/** A schema from `{column: type}` text, e.g. `schemaOf({ pixels: "FLOAT32[64]", label: "INT64" })`. */
export function schemaOf(types: Readonly<Record<string, string>>): Column[] {
  return Object.entries(types).map(([name, type]) => columnOf(name, type));
}

/**
 * A schema and where the rows are: in memory, under an S3 prefix (JSON Lines, CSV or TFRecord
 * objects, each a shard), or arriving on an SQS queue (unbounded).
 *
 * @example
 * const schema = schemaOf({ pixels: "FLOAT32[64]", label: "INT64" });
 * const inMemory = Table.fromRows(schema, [{ pixels: new Array(64).fill(0), label: 3n }]);
 * const onS3 = Table.fromS3("s3://my-data/digits/train/", schema); // every object under the prefix
 * const stream = Table.fromQueue(queueUrl, schema); // fit trains on it until stopped
 */
export class Table {
  private constructor(
    readonly schema: readonly Column[],
    readonly source: TableSource,
  ) {
    const names = new Set<string>();
    for (const c of schema) {
      if (names.has(c.name)) throw new ConfigError("schema", c.name, "column names that appear once");
      names.add(c.name);
    }
  }

  /**
   * @example
   * const table = Table.fromRows(schemaOf({ x: "FLOAT32", y: "INT64" }), [{ x: 0.5, y: 1n }]);
   */
  static fromRows(schema: readonly Column[], rows: readonly Row[]): Table {
    return new Table(schema, { kind: "rows", rows });
  }

  /** Every object under `uri` is a shard; the format comes from each key's extension unless given. */
  static fromS3(uri: string, schema: readonly Column[], format?: TableFormat): Table {
    parseS3Uri(uri, "table uri");
    return new Table(schema, { kind: "s3", uri, ...(format ? { format: checkFormat(format) } : {}) });
  }

  /** An unbounded table: rows arriving on an SQS queue. */
  static fromQueue(queueUrl: string, schema: readonly Column[]): Table {
    return new Table(schema, { kind: "queue", queueUrl });
  }

  get bounded(): boolean {
    return this.source.kind !== "queue";
  }

  /** The rows of an in-memory table. */
  get rows(): readonly Row[] {
    if (this.source.kind !== "rows") throw new ConfigError("table", this.source.kind, "an in-memory table (Table.fromRows) to read rows directly");
    return this.source.rows;
  }

  column(name: string): Column {
    const c = this.schema.find((col) => col.name === name);
    if (!c) throw new ConfigError("selected column", name, `a column of the table: ${this.schema.map((col) => col.name).join(", ")}`);
    return c;
  }

  /** The columns named, in that order, each checked against the schema. */
  select(names: readonly string[]): Column[] {
    return names.map((n) => this.column(n));
  }
}
