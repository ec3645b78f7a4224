/**
 * One way to run an SQS batch in a handler: records one after another (in queue order, as the
 * cores expect), partial batch failures in the response (the event source must report
 * `ReportBatchItemFailures`), through Powertools' batch processor.
 */
import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";

export interface SqsBatchOptions {
  /** The function's name in log lines. */
  readonly name: string;
  /** Errors that a retry can never mend (a malformed message): the record is let go, not retried into the DLQ. */
  readonly isFinal?: (error: unknown) => boolean;
  readonly log?: (line: string) => void;
  readonly context?: Context;
}

/**
 * Runs `handle` on every record; a record whose handler throws is reported back for SQS to
 * deliver again, unless `isFinal` says the error will never go away.
 *
 * @example
 * const response = await processSqsBatch(event, async (record) => feed(JSON.parse(record.body)), { name: "shard-feed", isFinal: (e) => e instanceof EventShapeError });
 */
export async function processSqsBatch(event: SQSEvent, handle: (record: SQSRecord) => Promise<void>, options: SqsBatchOptions): Promise<SQSBatchResponse> {
  const log = options.log ?? console.error;
  const record = async (r: SQSRecord): Promise<void> => {
    try {
      await handle(r);
    } catch (e) {
      log(`[${options.name}] message ${r.messageId}: ${(e as Error).message}`);
      if (!options.isFinal?.(e)) throw e;
    }
  };
  return processPartialResponse(event, record, new BatchProcessor(EventType.SQS), {
    // A batch whose every record failed is still a response of failures, not a thrown invocation:
    // the records come back one by one, as with a partial failure.
    throwOnFullBatchFailure: false,
    processInParallel: false,
    ...(options.context ? { context: options.context } : {}),
  });
}
