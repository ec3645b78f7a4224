/**
 * Errors of the tf.Example coding module. Both extend {@link ServerlessTfError}, so a caller can catch
 * the whole family at once, and both carry the context a user needs to find the bad row or byte.
 */
import { ServerlessTfError } from "../errors.ts";

/** Render a received value for an error message: bigint and bytes are not JSON, long values are cut. */
export function describeValue(value: unknown): string {
  let text: string;
  if (typeof value === "bigint") text = `${value}n`;
  else if (value instanceof Uint8Array) text = `<${value.length} bytes>`;
  else if (typeof value === "number") text = Object.is(value, -0) ? "-0" : String(value);
  else if (value === undefined) text = "undefined (missing)";
  else {
    try {
      text = JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v)) ?? String(value);
    } catch {
      text = Object.prototype.toString.call(value);
    }
  }
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/**
 * A value does not fit the column schema: wrong type, out of range, wrong list length, missing column,
 * or a column definition itself that is not valid (then `rowIndex` is undefined).
 *
 * @example
 * ```ts
 * try { encoder.encode({ label: "7" }, 12); }
 * catch (e) { if (e instanceof SchemaError) console.log(e.column, e.rowIndex, e.expected); }
 * ```
 */
export class SchemaError extends ServerlessTfError {
  constructor(
    readonly column: string,
    readonly rowIndex: number | undefined,
    readonly expected: string,
    readonly received: unknown,
    readonly hint = "fix the value or the column schema so that they agree",
  ) {
    const where = rowIndex === undefined ? `column "${column}"` : `column "${column}" of row ${rowIndex}`;
    super(`${where}: expected ${expected}. Received: ${describeValue(received)}. To fix: ${hint}.`);
  }
}

/**
 * Bytes are not a well-formed tf.Example or TFRecord stream (truncated, corrupt, hostile or too large).
 * `offset` is the byte position where decoding stopped.
 *
 * @example
 * ```ts
 * try { decoder.decode(bytes); } catch (e) { if (e instanceof DecodeError) console.log(e.offset); }
 * ```
 */
export class DecodeError extends ServerlessTfError {
  constructor(
    readonly offset: number,
    readonly reason: string,
    readonly column?: string,
    options?: { cause?: unknown },
  ) {
    const where = column === undefined ? `at byte ${offset}` : `at byte ${offset} (column "${column}")`;
    super(
      `cannot decode ${where}: ${reason}. The payload is not a valid tf.Example/TFRecord for this schema; ` +
        `check that producer and consumer use the same columns and that the bytes were not truncated or altered.`,
      options,
    );
  }
}
