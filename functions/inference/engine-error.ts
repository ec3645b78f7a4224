/** The inference engine failed a request, died, or cannot load a version; the batch is retried by SQS. */
import { ServerlessTfError } from "../../src/errors.ts";

export class EngineError extends ServerlessTfError {}
