/**
 * Feed and output messages (docs/protocol.md). Bodies are JSON so that a dead letter can be
 * read by a person; the TFRecord frames travel base64-encoded in `data`.
 */
import type { Column } from "../codec/schema.ts";
import type { MemberKey } from "./names.ts";

/** The feature every fed and output row carries: its id, unique across the job. */
export const ROW_ID = "__row_id";
export const ROW_ID_COLUMN: Column = { name: ROW_ID, dtype: "INT64", shape: "scalar" };

/** Unique across the job: the shard's index in the high bits, the row in the low 32. */
export function rowId(shardIndex: number, row: number): bigint {
  return (BigInt(shardIndex) << 32n) | BigInt(row);
}

export interface RowsMessage {
  readonly v: 1;
  readonly kind: "rows";
  readonly job: string;
  readonly shard?: string;
  readonly seq: number;
  readonly member: MemberKey;
  readonly count: number;
  /** `deflate`: `data` is the raw deflate of the frames (feed messages of bounded shards); absent: the frames themselves. */
  readonly encoding?: "deflate";
  readonly data: string;
}

export interface EndOfDataMessage {
  readonly v: 1;
  readonly kind: "end-of-data";
  readonly job: string;
  readonly member: MemberKey;
  readonly rows: number;
  readonly messages: number;
  readonly steps: number;
}

export interface EndOfOutputMessage {
  readonly v: 1;
  readonly kind: "end-of-output";
  readonly job: string;
  readonly member: MemberKey;
  readonly rows: number;
}

export interface StopMessage {
  readonly v: 1;
  readonly kind: "stop";
  readonly job: string;
}

export type FeedMessage = RowsMessage | EndOfDataMessage | StopMessage;
export type OutputMessage = RowsMessage | EndOfOutputMessage;

/** Bytes of the envelope around `data` for a rows message, so the packer can budget the body. */
export function rowsEnvelopeBytes(job: string, shard: string, member: string): number {
  const probe: RowsMessage = { v: 1, kind: "rows", job, shard, seq: 999_999_999, member: member as MemberKey, count: 999_999, encoding: "deflate", data: "" };
  // SQS counts message attributes against the size limit too: name, type and value of `feedId`.
  const attribute = "feedId".length + "String".length + feedId(shard, 999_999_999, member).length;
  return Buffer.byteLength(JSON.stringify(probe)) + attribute;
}

export function feedId(shard: string, seq: number, member: string): string {
  return `${shard}:${seq}:${member}`;
}
