/**
 * Messages of the SQS inference function (docs/protocol.md "Inference messages"): an input
 * message holds one row or many (each with its id), an output message holds the results of one
 * input message, and each row that went to the dead-letter queue has a machine-readable reason.
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

/**
 * Input queue body with many rows: `{"v":1,"rows":[{"id":"r-1","row":{...}}, ...]}`. The whole SQS
 * batch runs as one model call, and the results come back as one {@link ResultsMessage}.
 */
export interface InputRowsMessage {
  readonly v: 1;
  readonly rows: readonly InputRowEntry[];
}

/** One row of an {@link InputRowsMessage}: parsed, or refused on its own (the other rows still run). */
export type InputRowEntry = { readonly id: string; readonly row: Readonly<Record<string, unknown>> } | { readonly error: EventShapeError; readonly id: string | null; readonly body: string };

/** Most rows one input message may carry. */
export const MAX_ROWS_PER_MESSAGE = 10_000;

/** Output queue body: the row's outputs, typed by the model's output columns (INT64 as a decimal string). */
export interface ResultMessage {
  readonly v: 1;
  readonly kind: "result";
  readonly id: string;
  readonly modelId: string;
  readonly version: string;
  readonly row: Readonly<Record<string, unknown>>;
}

/** Output queue body for an {@link InputRowsMessage}: its rows' results, in its order (a very large one is split over several). */
export interface ResultsMessage {
  readonly v: 1;
  readonly kind: "results";
  readonly modelId: string;
  readonly version: string;
  readonly rows: readonly { readonly id: string; readonly row: Readonly<Record<string, unknown>> }[];
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

/**
 * Parses an input message body of either shape: one row (`id`, `row`) or many (`rows`).
 *
 * @example
 * parseInputMessage('{"v":1,"rows":[{"id":"a","row":{"x":1}},{"id":"b","row":{"x":2}}]}'); // { v: 1, rows: [...] }
 * @throws EventShapeError when the message itself is malformed; a malformed row of `rows` is an entry with its error.
 */
export function parseInputMessage(body: string): InputRowMessage | InputRowsMessage {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new EventShapeError(TYPE, "body", body, "JSON");
  }
  const rows = (json as { rows?: unknown } | null)?.rows;
  if (rows === undefined) return parseInputRow(body);
  if ((json as { v?: unknown }).v !== 1) throw new EventShapeError(TYPE, "v", (json as { v?: unknown }).v, "1");
  if (!Array.isArray(rows) || rows.length === 0 || rows.length > MAX_ROWS_PER_MESSAGE) throw new EventShapeError(TYPE, "rows", rows, `an array of 1 to ${MAX_ROWS_PER_MESSAGE} {"id":...,"row":{...}} entries`);
  const seen = new Set<string>();
  return {
    v: 1,
    rows: rows.map((entry: unknown, i): InputRowEntry => {
      const o = (typeof entry === "object" && entry !== null && !Array.isArray(entry) ? entry : {}) as Record<string, unknown>;
      const id = typeof o.id === "string" && ID_PATTERN.test(o.id) ? o.id : null;
      const refuse = (field: string, received: unknown, expected: string): InputRowEntry => ({ error: new EventShapeError(TYPE, `rows[${i}].${field}`, received, expected), id, body: JSON.stringify(entry) ?? "" });
      if (id === null) return refuse("id", o.id, "a row id of 1 to 128 printable ASCII characters");
      if (seen.has(id)) return refuse("id", id, "an id not used by another row of the message");
      seen.add(id);
      if (typeof o.row !== "object" || o.row === null || Array.isArray(o.row)) return refuse("row", o.row, "a JSON object with one field per input column");
      return { id, row: o.row as Record<string, unknown> };
    }),
  };
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
  return rowRejection(record.messageId, record.body, rowIdOf(record.body), error);
}

/** The DLQ message for one row (`body`, its id `row`) of the input message `messageId`, rejected because of `error`. */
export function rowRejection(messageId: string, body: string, row: string | null, error: unknown): RejectedMessage {
  let reason: RejectionReason;
  if (error instanceof SchemaError) {
    reason = { error: "SchemaError", message: error.message, column: error.column, row, expected: error.expected, received: describeValue(error.received) };
  } else if (error instanceof EventShapeError) {
    reason = { error: "EventShapeError", message: error.message, column: error.field, row, expected: error.expected, received: describeValue(error.received) };
  } else {
    reason = { error: (error as Error)?.name ?? "Error", message: (error as Error)?.message ?? String(error), row };
  }
  if (body.length <= MAX_KEPT_BODY) return { v: 1, kind: "rejected", messageId, reason, body };
  return { v: 1, kind: "rejected", messageId, reason, body: body.slice(0, MAX_KEPT_BODY), bodyBytes: Buffer.byteLength(body) };
}
