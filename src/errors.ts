/**
 * Typed errors. Each says what happened, with the context a user needs, and what to do next.
 * Errors of one subsystem live beside it (`coding/errors.ts`, `registry/errors.ts`, ...) and
 * extend {@link ServerlessTfError}, so callers can catch the whole family in one place.
 */
/**
 * The base of every error serverless-tf throws, so a caller can catch the whole family at once.
 *
 * @example
 * try {
 *   await estimator.fit(table);
 * } catch (e) {
 *   if (e instanceof ServerlessTfError) console.error(`${e.name}: ${e.message}`);
 *   else throw e;
 * }
 */
export class ServerlessTfError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A setting (environment variable, param, option) has a value that is not allowed.
 *
 * @example
 * try {
 *   new TFEstimator().setWorkerNum(0);
 * } catch (e) {
 *   if (e instanceof ConfigError) console.error(e.setting, e.received, e.expected); // workerNum 0 an integer from 1 to 64
 *   else throw e;
 * }
 */
export class ConfigError extends ServerlessTfError {
  constructor(
    readonly setting: string,
    readonly received: unknown,
    readonly expected: string,
  ) {
    super(`${setting} must be ${expected}. Received: ${JSON.stringify(received)}`);
  }
}
