/**
 * Typed params: each has a name, a description, a default and a validator, and a stage's
 * params round-trip through JSON (save/load). Modelled on Flink ML's `Param`.
 */
import { ConfigError } from "../errors.ts";

export interface Param<T> {
  readonly name: string;
  readonly description: string;
  readonly defaultValue: T;
  /** Returns the value as the param holds it, or throws a ConfigError naming the param. */
  validate(value: unknown): T;
}

function param<T>(name: string, description: string, defaultValue: T, validate: (value: unknown, name: string) => T): Param<T> {
  return { name, description, defaultValue, validate: (v) => validate(v, name) };
}

export const validators = {
  int(min: number, max = Number.MAX_SAFE_INTEGER) {
    return (v: unknown, name: string): number => {
      if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max) throw new ConfigError(name, v, `an integer from ${min} to ${max}`);
      return v as number;
    };
  },
  string(pattern?: RegExp, what = "a non-empty string") {
    return (v: unknown, name: string): string => {
      if (typeof v !== "string" || !v || (pattern && !pattern.test(v))) throw new ConfigError(name, v, what);
      return v;
    };
  },
  optionalString(pattern?: RegExp, what = "a string or null") {
    return (v: unknown, name: string): string | null => {
      if (v === null) return null;
      if (typeof v !== "string" || (pattern && !pattern.test(v))) throw new ConfigError(name, v, what);
      return v;
    };
  },
  strings(minLength = 0) {
    return (v: unknown, name: string): string[] => {
      if (!Array.isArray(v) || v.length < minLength || !v.every((s) => typeof s === "string" && s.length > 0)) {
        throw new ConfigError(name, v, `an array of at least ${minLength} non-empty strings`);
      }
      return [...(v as string[])];
    };
  },
  jsonObject() {
    return (v: unknown, name: string): Record<string, unknown> => {
      if (typeof v !== "object" || v === null || Array.isArray(v)) throw new ConfigError(name, v, "a JSON object");
      try {
        return JSON.parse(JSON.stringify(v)) as Record<string, unknown>;
      } catch {
        throw new ConfigError(name, "(not serializable)", "a JSON-serializable object");
      }
    };
  },
  stringMap() {
    return (v: unknown, name: string): Record<string, string> => {
      if (typeof v !== "object" || v === null || Array.isArray(v) || !Object.values(v).every((s) => typeof s === "string")) {
        throw new ConfigError(name, v, "an object of string values");
      }
      return { ...(v as Record<string, string>) };
    };
  },
};

export { param as defineParam };

/** The values a stage holds: set ones, else each param's default. */
export class ParamMap {
  private readonly values = new Map<string, unknown>();

  constructor(private readonly known: readonly Param<unknown>[]) {}

  get<T>(p: Param<T>): T {
    return (this.values.has(p.name) ? this.values.get(p.name) : p.defaultValue) as T;
  }

  set<T>(p: Param<T>, value: T | unknown): void {
    this.values.set(p.name, p.validate(value));
  }

  /** Every param with its value (defaults included), so a saved stage does not depend on later default changes. */
  toJSON(): Record<string, unknown> {
    return Object.fromEntries(this.known.map((p) => [p.name, this.get(p)]));
  }

  /** Sets every param found in `json`; an unknown name is an error, since it was meant for something. */
  loadJSON(json: Record<string, unknown>, owner: string): void {
    for (const [name, value] of Object.entries(json)) {
      const p = this.known.find((k) => k.name === name);
      if (!p) throw new ConfigError(`${owner} param`, name, `one of ${this.known.map((k) => k.name).join(", ")}`);
      this.set(p, value);
    }
  }
}
