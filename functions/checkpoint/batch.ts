/** The checkpoint stage over an SQS batch of S3 notifications for `export.json` objects. */
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { EventShapeError } from "../../src/protocol/errors.ts";
import { parseS3Notification } from "../../src/protocol/s3-notification.ts";
import type { JobDeps } from "../../src/jobs/deps.ts";
import { EXPORT_MANIFEST, publishExport } from "./publish.ts";

export async function runCheckpointBatch(deps: JobDeps, event: SQSEvent, log: (line: string) => void = console.error): Promise<SQSBatchResponse> {
  const batchItemFailures: SQSBatchResponse["batchItemFailures"] = [];
  for (const record of event.Records) {
    try {
      for (const object of parseS3Notification(record.body)) {
        if (object.key.endsWith(EXPORT_MANIFEST)) await publishExport(deps, object);
      }
    } catch (e) {
      log(`[checkpoint] message ${record.messageId}: ${(e as Error).message}`);
      if (!(e instanceof EventShapeError)) batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
}
