/**
 * TFRecord framing and SQS packing of encoded examples.
 *
 * A frame is `uint64 LE length | uint32 LE masked_crc32c(length bytes) | data | uint32 LE masked_crc32c(data)`
 * (tensorflow/core/lib/io/record_writer.cc), so `tf.data.TFRecordDataset` reads our bytes unchanged.
 *
 * Compression, measured by bench/coding.ts on one SQS body of 600 examples (64 FLOAT32 + INT64):
 * digits-like pixels (integers 0..16, half zeros) 248,800 B base64 vs 39,156 B gzip+base64 (6.4x, 7-21 ms);
 * random float pixels 248,800 B vs 190,236 B (1.3x, 3-5 ms). Feed messages are deflated
 * ({@link packDeflatedRecords}, `"encoding":"deflate"` in docs/protocol.md): SQS moving the bytes was
 * most of the feed's time (bench/feed.ts), and even real-valued features gain a little. Output and
 * streaming messages, small and latency-bound, stay plain base64 of the frames.
 */
import { promisify } from "node:util";
import { deflateRaw } from "node:zlib";
import { maskedCrc32c } from "./crc32c.ts";
import { DecodeError, SchemaError } from "./errors.ts";

/** Bytes a frame adds around its data: 8 (length) + 4 (length CRC) + 4 (data CRC). */
export const FRAME_OVERHEAD = 16;

/**
 * Frame records as one TFRecord byte stream.
 *
 * @example
 * ```ts
 * const stream = frameRecords([encoder.encode(row)]); // write to a .tfrecord file or a feed message
 * ```
 */
export function frameRecords(records: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const r of records) total += r.length + FRAME_OVERHEAD;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let p = 0;
  for (const r of records) {
    view.setUint32(p, r.length, true);
    view.setUint32(p + 4, Math.floor(r.length / 2 ** 32), true);
    view.setUint32(p + 8, maskedCrc32c(out, p, p + 8), true);
    out.set(r, p + 12);
    view.setUint32(p + 12 + r.length, maskedCrc32c(r), true);
    p += r.length + FRAME_OVERHEAD;
  }
  return out;
}

export interface UnframeOptions {
  /** Largest record accepted (default 4 MiB), so a corrupt length cannot claim unbounded memory. */
  readonly maxRecordBytes?: number;
}

/**
 * Split a TFRecord byte stream into its records, verifying both CRCs of every frame.
 * Throws {@link DecodeError} (with the offset of the bad frame) on truncation or a CRC mismatch.
 * The records are views into `stream` (no copy).
 *
 * @example
 * ```ts
 * const records = unframeRecords(Buffer.from(message.data, "base64"));
 * ```
 */
export function unframeRecords(stream: Uint8Array, options: UnframeOptions = {}): Uint8Array[] {
  const maxRecordBytes = options.maxRecordBytes ?? 4 * 1024 * 1024;
  if (!(stream instanceof Uint8Array)) throw new DecodeError(0, `expected a Uint8Array, received ${typeof stream}`);
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  const records: Uint8Array[] = [];
  let p = 0;
  while (p < stream.length) {
    if (stream.length - p < 12) throw new DecodeError(p, `truncated frame header (${stream.length - p} bytes left, 12 needed)`);
    if (view.getUint32(p + 8, true) !== maskedCrc32c(stream, p, p + 8)) throw new DecodeError(p, "length CRC mismatch (corrupt frame)");
    const high = view.getUint32(p + 4, true);
    const len = view.getUint32(p, true);
    if (high !== 0 || len > maxRecordBytes) throw new DecodeError(p, `record length ${high * 2 ** 32 + len} exceeds maxRecordBytes (${maxRecordBytes})`);
    const start = p + 12;
    if (stream.length - start < len + 4) throw new DecodeError(p, `truncated record: ${len} data bytes + 4 CRC bytes declared, ${stream.length - start} left`);
    if (view.getUint32(start + len, true) !== maskedCrc32c(stream, start, start + len)) throw new DecodeError(start, "data CRC mismatch (corrupt record)");
    records.push(stream.subarray(start, start + len));
    p = start + len + 4;
  }
  return records;
}

/** Exact length of the base64 (with padding) of `n` bytes. */
export function base64Length(n: number): number {
  return 4 * Math.ceil(n / 3);
}


export interface PackOptions {
  /** Budget for one whole message: the transport's limit (src/protocol/limits.ts for SQS). */
  readonly maxBodyBytes: number;
  /**
   * Bytes of everything in the message except the base64 `data`: the JSON envelope around it
   * (`{"v":1,"kind":"rows",...,"data":""}`) plus the message attributes SQS counts (e.g. `feedId`).
   * Take the largest value the envelope can have (widest `seq` and `count`).
   */
  readonly envelopeBytes: number;
  /** Row index of `records[0]`, so an error names the row of the whole shard (default 0). */
  readonly firstRowIndex?: number;
}

/**
 * Exact size of the base64 `data` field holding `records` as TFRecord frames.
 *
 * @example
 * ```ts
 * framedBase64Length([new Uint8Array(10)]); // 36: 26 framed bytes -> 36 base64 chars
 * ```
 */
export function framedBase64Length(records: readonly Uint8Array[]): number {
  let n = 0;
  for (const r of records) n += r.length + FRAME_OVERHEAD;
  return base64Length(n);
}

/**
 * Split encoded records into consecutive groups whose message (envelope + base64 of their TFRecord
 * frames) fits `maxBodyBytes`. Greedy and order-preserving, so a retry re-packs the same groups.
 * A single record too big for one message throws {@link SchemaError} naming its row.
 *
 * @example
 * ```ts
 * for (const group of packRecords(records, { envelopeBytes: 200 })) {
 *   send({ ...envelope, count: group.length, data: Buffer.from(frameRecords(group)).toString("base64") });
 * }
 * ```
 */
export function packRecords(records: readonly Uint8Array[], options: PackOptions): Uint8Array[][] {
  const budget = checkPackable(records, options);
  const groups: Uint8Array[][] = [];
  let group: Uint8Array[] = [];
  let frameBytes = 0;
  for (const record of records) {
    const size = record.length + FRAME_OVERHEAD;
    if (base64Length(frameBytes + size) > budget) {
      groups.push(group);
      group = [];
      frameBytes = 0;
    }
    group.push(record);
    frameBytes += size;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/** Checks the options and that every record fits one message as plain frames; returns the base64 budget for `data`. */
function checkPackable(records: readonly Uint8Array[], options: PackOptions): number {
  const { maxBodyBytes, envelopeBytes } = options;
  const firstRowIndex = options.firstRowIndex ?? 0;
  if (!Number.isSafeInteger(envelopeBytes) || envelopeBytes < 0 || envelopeBytes >= maxBodyBytes) {
    throw new SchemaError("<pack options>", undefined, `envelopeBytes: an integer in [0, maxBodyBytes=${maxBodyBytes})`, envelopeBytes, "measure the envelope JSON plus message attributes in bytes");
  }
  const budget = maxBodyBytes - envelopeBytes;
  records.forEach((record, i) => {
    if (base64Length(record.length + FRAME_OVERHEAD) > budget) {
      throw new SchemaError(
        "<record>",
        firstRowIndex + i,
        `an encoded example of at most ${Math.floor(budget / 4) * 3 - FRAME_OVERHEAD} bytes (message budget ${maxBodyBytes} minus envelope ${envelopeBytes}, in base64)`,
        `${record.length} bytes`,
        "shrink the row (fewer or smaller columns), or send large payloads through S3 with a pointer",
      );
    }
  });
  return budget;
}

/** One message's share of {@link packDeflatedRecords}: its record count and its `data` field. */
export interface DeflatedGroup {
  readonly count: number;
  /** base64 of the raw deflate (RFC 1951) of the group's TFRecord frames. */
  readonly data: string;
}

const deflateRawAsync = promisify(deflateRaw);

/**
 * Like {@link packRecords}, but each group's frames are deflated before base64: feed messages
 * then carry several times the rows (tf.Example's tags and fixed-width values compress well),
 * which cuts SQS requests and bytes. Each group is the longest run of records whose deflated
 * frames fit the budget and that inflates to at most `maxInflatedBytes`; the size of the next
 * group is guessed from the ratio of the last one and halved until it fits, so packing is
 * deterministic for the same records and options. Level 1: the ratio of higher levels is a few
 * percent better at several times the CPU.
 *
 * @throws {SchemaError} a record too big for one message even before compression (as {@link packRecords}).
 */
export async function packDeflatedRecords(records: readonly Uint8Array[], options: PackOptions & { readonly maxInflatedBytes: number }): Promise<DeflatedGroup[]> {
  const budget = Math.floor(checkPackable(records, options) / 4) * 3;
  const groups: DeflatedGroup[] = [];
  let ratio = 0.5;
  let start = 0;
  while (start < records.length) {
    const target = Math.min(options.maxInflatedBytes, Math.floor((budget / ratio) * 0.9));
    let end = start;
    let raw = 0;
    while (end < records.length && (end === start || raw + records[end]!.length + FRAME_OVERHEAD <= target)) raw += records[end++]!.length + FRAME_OVERHEAD;
    let deflated = await deflateRawAsync(frameRecords(records.slice(start, end)), { level: 1 });
    while (deflated.length > budget && end - start > 1) {
      end = start + Math.floor((end - start) / 2);
      raw = records.slice(start, end).reduce((n, r) => n + r.length + FRAME_OVERHEAD, 0);
      deflated = await deflateRawAsync(frameRecords(records.slice(start, end)), { level: 1 });
    }
    // One record always fits: deflate grows incompressible data by a few bytes per 16 KiB block
    // at most, and checkPackable checked it fits uncompressed, with base64's third to spare.
    ratio = Math.max(deflated.length / raw, 0.001);
    groups.push({ count: end - start, data: deflated.toString("base64") });
    start = end;
  }
  return groups;
}
