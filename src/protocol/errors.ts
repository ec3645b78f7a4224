import { describeValue } from "../codec/errors.ts";
import { ServerlessTfError } from "../errors.ts";

/** An event a handler cannot act on: malformed JSON, a wrong shape, a field out of range. */
export class EventShapeError extends ServerlessTfError {
  constructor(
    readonly eventType: string,
    readonly field: string,
    readonly received: unknown,
    readonly expected: string,
  ) {
    super(`${eventType}: ${field} must be ${expected}. Received: ${describeValue(received)}. The message is not retried; fix its producer.`);
  }
}
