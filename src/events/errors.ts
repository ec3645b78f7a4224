import { ServerlessTfError } from "../errors.ts";

/** An event a handler cannot act on: malformed JSON, a wrong shape, a field out of range. */
export class EventShapeError extends ServerlessTfError {
  constructor(
    readonly eventType: string,
    readonly field: string,
    readonly received: unknown,
    readonly expected: string,
  ) {
    const shown = typeof received === "string" && received.length > 120 ? `${received.slice(0, 120)}...` : received;
    super(`${eventType}: ${field} must be ${expected}. Received: ${JSON.stringify(shown) ?? String(shown)}. The message is not retried; fix its producer.`);
  }
}
