/**
 * Typed errors. Each says what happened, with the context a user needs, and what to do next.
 * Errors of one subsystem live beside it (`coding/errors.ts`, `registry/errors.ts`, ...) and
 * extend {@link ServerlessTfError}, so callers can catch the whole family in one place.
 */
export class ServerlessTfError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A setting (environment variable, param, option) has a value that is not allowed. */
export class ConfigError extends ServerlessTfError {
  constructor(
    readonly setting: string,
    readonly received: unknown,
    readonly expected: string,
  ) {
    super(`${setting} must be ${expected}. Received: ${JSON.stringify(received)}`);
  }
}
