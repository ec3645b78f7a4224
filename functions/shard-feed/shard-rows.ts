/**
 * A shard's rows read as a stream from a cursor, a chunk at a time: a shard-feed holds one chunk,
 * never the whole object, so a shard of any size fits the function's memory, and a continuation
 * starts at its cursor (the rows before it are skipped unparsed).
 */
import { StringDecoder } from "node:string_decoder";
import type { Readable } from "node:stream";
import { parse as parseCsvStream } from "csv-parse";
import { createDecoder, DEFAULT_MAX_EXAMPLE_BYTES } from "../../src/codec/example.ts";
import type { Column, Row } from "../../src/codec/schema.ts";
import { CSV_OPTIONS, rowFromCsvRecord, rowsFromLines } from "../../src/codec/table-rows.ts";
import { FRAME_OVERHEAD, unframeRecords } from "../../src/codec/tfrecord.ts";
import { ServerlessTfError } from "../../src/errors.ts";
import type { Deps } from "../../src/jobs/deps.ts";
import { parseS3Uri } from "../../src/protocol/names.ts";
import type { ShardRef } from "../../src/protocol/shard-feed-request.ts";
import { getObjectStream } from "../../src/storage/objects.ts";

export class ShardReadError extends ServerlessTfError {}

/** Rows `first` .. `first + rows.length - 1` of a shard. */
export interface RowChunk {
  readonly first: number;
  readonly rows: readonly Row[];
  /** The shard ends with this chunk: it is short. A full chunk says false even when it is the last. */
  readonly last: boolean;
}

/**
 * The rows of `shard` from row `fromRow` on, `chunkRows` at a time.
 *
 * @example
 * for await (const { first, rows } of shardRowChunks(deps, shard, columns, 0, 4096)) feed(first, rows);
 */
export async function* shardRowChunks(deps: Deps, shard: ShardRef, columns: readonly Column[], fromRow: number, chunkRows: number): AsyncGenerator<RowChunk> {
  const body = await getObjectStream(deps.clients, parseS3Uri(shard.uri, "shard.uri"));
  if (!body) throw new ShardReadError(`shard ${shard.shardId} is gone: nothing at ${shard.uri}. Was the input deleted while the job ran?`);
  try {
    switch (shard.format) {
      case "jsonl":
        yield* jsonLinesChunks(body, columns, fromRow, chunkRows);
        break;
      case "csv":
        yield* csvChunks(body, columns, fromRow, chunkRows);
        break;
      case "tfrecord":
        yield* tfRecordChunks(body, columns, fromRow, chunkRows);
        break;
    }
  } finally {
    body.destroy(); // a continuation stops reading mid-object
  }
}

/** Chunks of `items` (counted from 0) from `fromRow` on, each turned into rows by `toRows`. */
async function* chunked<T>(items: AsyncIterable<T>, fromRow: number, chunkRows: number, toRows: (batch: T[], first: number) => Row[]): AsyncGenerator<RowChunk> {
  let index = 0;
  let batch: T[] = [];
  let first = fromRow;
  for await (const item of items) {
    if (index++ < fromRow) continue;
    batch.push(item);
    if (batch.length === chunkRows) {
      yield { first, rows: toRows(batch, first), last: false };
      first += batch.length;
      batch = [];
    }
  }
  if (batch.length) yield { first, rows: toRows(batch, first), last: true };
}

/**
 * The stream's non-blank lines, read only as fast as they are taken (readline's iterator reads
 * ahead without bound, which would hold the object). Blank lines are not rows (rowsFromLines
 * skips them too), so row numbers match it.
 */
async function* nonBlankLines(body: Readable): AsyncGenerator<string> {
  const text = new StringDecoder("utf8");
  let rest = "";
  for await (const part of body as AsyncIterable<Buffer>) {
    const lines = (rest + text.write(part)).split("\n");
    rest = lines.pop()!;
    for (const line of lines) if (line.trim()) yield line;
  }
  rest += text.end();
  if (rest.trim()) yield rest;
}

function jsonLinesChunks(body: Readable, columns: readonly Column[], fromRow: number, chunkRows: number): AsyncGenerator<RowChunk> {
  return chunked(nonBlankLines(body), fromRow, chunkRows, (lines, first) => rowsFromLines(lines, columns, first));
}

function csvChunks(body: Readable, columns: readonly Column[], fromRow: number, chunkRows: number): AsyncGenerator<RowChunk> {
  const records = body.pipe(parseCsvStream(CSV_OPTIONS)) as AsyncIterable<Record<string, string>>;
  return chunked(records, fromRow, chunkRows, (batch, first) => batch.map((record, i) => rowFromCsvRecord(record, columns, first + i)));
}

/** The stream's TFRecord frames, each whole (length, CRCs and data), as they complete. */
async function* frames(body: Readable): AsyncGenerator<Uint8Array> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const part of body as AsyncIterable<Buffer>) {
    pending = pending.length ? Buffer.concat([pending, part]) : part;
    let offset = 0;
    while (pending.length - offset >= 12) {
      const size = FRAME_OVERHEAD + Number(pending.readBigUInt64LE(offset));
      if (size > FRAME_OVERHEAD + DEFAULT_MAX_EXAMPLE_BYTES) {
        // A damaged length: hand the bytes to the framing check, which names it, instead of buffering the object.
        yield pending.subarray(offset);
        return;
      }
      if (pending.length - offset < size) break;
      yield pending.subarray(offset, offset + size);
      offset += size;
    }
    pending = pending.subarray(offset);
  }
  // A cut last frame: the framing check names it.
  if (pending.length) yield pending;
}

function tfRecordChunks(body: Readable, columns: readonly Column[], fromRow: number, chunkRows: number): AsyncGenerator<RowChunk> {
  const decoder = createDecoder(columns);
  return chunked(frames(body), fromRow, chunkRows, (batch, first) => {
    const records = unframeRecords(Buffer.concat(batch));
    return records.map((record, i) => decoder.decode(record, first + i));
  });
}
