/**
 * Reading JSON wire data into typed values, one field at a time: every failure is an
 * EventShapeError naming the field's full path, what it held and what is allowed. The parsers of
 * the coordinator's start event and of the job spec share it (and the sub-parsers of
 * src/protocol/spec.ts), so both read a python config, a remainder policy and an inference
 * config by the same rules.
 */
import { SchemaError } from "../codec/errors.ts";
import { parseColumns, type Column } from "../codec/schema.ts";
import { EventShapeError } from "./errors.ts";

export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
export const isInt = (min: number) => (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= min;
export const isS3Uri = (v: unknown): v is string => typeof v === "string" && /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.*/.test(v) && v.length < 2048;

/** Reads the fields of one JSON object; every failure names the field's full path. */
export class Fields {
  constructor(
    private readonly o: Json,
    private readonly path: string,
    /** The message type errors name (`coordinator event`, `job spec`). */
    private readonly type: string,
  ) {}

  static of(value: unknown, path: string, type: string): Fields {
    if (!isObject(value)) throw new EventShapeError(type, path, value, "a JSON object");
    return new Fields(value, path, type);
  }

  name(key: string): string {
    return `${this.path}.${key}`;
  }

  has(key: string): boolean {
    return this.o[key] !== undefined && this.o[key] !== null;
  }

  get<T>(key: string, expected: string, ok: (v: unknown) => v is T): T {
    const v = this.o[key];
    if (!ok(v)) throw new EventShapeError(this.type, this.name(key), v, expected);
    return v;
  }

  optional<T>(key: string, expected: string, ok: (v: unknown) => v is T): T | undefined {
    return this.has(key) ? this.get(key, expected, ok) : undefined;
  }

  /** Refuses a key outside `known`, naming it: a typo would otherwise be a setting silently ignored. */
  only(known: readonly string[]): this {
    const unknown = Object.keys(this.o).find((k) => !known.includes(k));
    if (unknown !== undefined) throw new EventShapeError(this.type, this.name(unknown), this.o[unknown], `absent (known keys: ${known.join(", ")})`);
    return this;
  }

  object(key: string): Fields {
    return Fields.of(this.o[key], this.name(key), this.type);
  }

  columns(key: string): Column[] {
    const list = this.object(key).o.columns;
    try {
      return parseColumns(list);
    } catch (e) {
      if (e instanceof SchemaError) throw new EventShapeError(this.type, `${this.name(key)}.columns`, list, `a column list: ${e.message}`);
      throw e;
    }
  }
}
