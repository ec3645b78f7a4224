/**
 * Messages of the SQS inference function (docs/protocol.md "Inference messages"): one input row
 * per input message, one result per output message, and a machine-readable reason for each
 * row that went to the dead-letter queue.
 */
import type { SQSRecord } from "aws-lambda";
import { SchemaError, describeValue } from "../codec/errors.ts";
import { EventShapeError } from "./errors.ts";

/** Input queue body: `{"v":1,"id":"r-17","row":{"pixels":[...]}}`. The id comes back with the result. */
export interface InputRowMessage {
  readonly v: 1;
  readonly id: string;
  readonly row: Readonly<Record<string, unknown>>;
}

/** Output queue body: the row's outputs, typed by the model's output columns (INT64 as a decimal string). */
export interface ResultMessage {
  readonly v: 1;
  readonly kind: "result";
  readonly id: string;
  readonly modelId: string;
  readonly version: string;
  readonly row: Readonly<Record<string, unknown>>;
}

/** Why a row was rejected: enough for a program to route or fix it. */
export interface RejectionReason {
  readonly error: string;
  readonly message: string;
  readonly column?: string;
  /** The row id from the input message (null when the body had none). */
  readonly row: string | null;
  readonly expected?: string;
  readonly received?: string;
}

/** DLQ body for a rejected row: the reason and the original body, untouched unless it is over {@link MAX_KEPT_BODY} characters. */
export interface RejectedMessage {
  readonly v: 1;
  readonly kind: "rejected";
  readonly messageId: string;
  readonly reason: RejectionReason;
  readonly body: string;
  /** Set when `body` holds only the first {@link MAX_KEPT_BODY} characters: the original's length in UTF-8 bytes. */
  readonly bodyBytes?: number;
}

/**
 * The longest body a rejection keeps whole (64 Ki characters). A dead letter must fit SQS's
 * 256 KiB message limit with its reason, so a hostile body near that limit is cut, never refused.
 */
export const MAX_KEPT_BODY = 65_536;

const TYPE = "inference input";
const ID_PATTERN = /^[\x21-\x7e]{1,128}$/;

/**
 * Parses an input message body.
 *
 * @example
 * parseInputRow('{"v":1,"id":"r-1","row":{"pixels":[0,1]}}'); // { v: 1, id: "r-1", row: { pixels: [0, 1] } }
 * @throws EventShapeError naming the field, what was received and what is expected.
 */
export function parseInputRow(body: string): InputRowMessage {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new EventShapeError(TYPE, "body", body, "JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new EventShapeError(TYPE, "body", json, 'a JSON object {"v":1,"id":...,"row":{...}}');
  const o = json as Record<string, unknown>;
  if (o.v !== 1) throw new EventShapeError(TYPE, "v", o.v, "1");
  if (typeof o.id !== "string" || !ID_PATTERN.test(o.id)) throw new EventShapeError(TYPE, "id", o.id, "a row id of 1 to 128 printable ASCII characters");
  if (typeof o.row !== "object" || o.row === null || Array.isArray(o.row)) throw new EventShapeError(TYPE, "row", o.row, "a JSON object with one field per input column");
  return { v: 1, id: o.id, row: o.row as Record<string, unknown> };
}

/** The row id of a body that may not parse, for the rejection reason. */
function rowIdOf(body: string): string | null {
  try {
    const id = (JSON.parse(body) as { id?: unknown }).id;
    return typeof id === "string" ? id : null;
  } catch {
    return null;
  }
}

/** The DLQ message for `record`, rejected because of `error`. */
export function rejection(record: SQSRecord, error: unknown): RejectedMessage {
  const row = rowIdOf(record.body);
  let reason: RejectionReason;
  if (error instanceof SchemaError) {
    reason = { error: "SchemaError", message: error.message, column: error.column, row, expected: error.expected, received: describeValue(error.received) };
  } else if (error instanceof EventShapeError) {
    reason = { error: "EventShapeError", message: error.message, column: error.field, row, expected: error.expected, received: describeValue(error.received) };
  } else {
    reason = { error: (error as Error)?.name ?? "Error", message: (error as Error)?.message ?? String(error), row };
  }
  if (record.body.length <= MAX_KEPT_BODY) return { v: 1, kind: "rejected", messageId: record.messageId, reason, body: record.body };
  return { v: 1, kind: "rejected", messageId: record.messageId, reason, body: record.body.slice(0, MAX_KEPT_BODY), bodyBytes: Buffer.byteLength(record.body) };
}
