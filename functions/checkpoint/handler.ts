/** Lambda: publishes finished exports as model versions (S3 notifications for `export.json`, through SQS). */
import { processSqsBatch } from "../../src/aws/sqs-batch.ts";
import { depsFromEnv, type Deps } from "../../src/jobs/deps.ts";
import { EventShapeError } from "../../src/protocol/errors.ts";
import { EXPORT_MANIFEST } from "../../src/protocol/model-metadata.ts";
import { parseS3Notification } from "../../src/protocol/s3-notification.ts";
import type { FunctionFactories, SqsHandler } from "../../src/runtime/functions.ts";
import { RejectedExportError, publishExport } from "./publish.ts";

export function createCheckpointHandler(deps: Deps, log: (line: string) => void = (line) => console.error(line)): SqsHandler {
  return (event) =>
    processSqsBatch(
      event,
      async (record) => {
        for (const object of parseS3Notification(record.body)) {
          if (object.key.endsWith(EXPORT_MANIFEST)) await publishExport(deps, object);
        }
      },
      { name: "checkpoint", isFinal: (e) => e instanceof EventShapeError || e instanceof RejectedExportError, log },
    );
}

let fromEnv: SqsHandler | undefined;

export const handler: SqsHandler = (event, context) => (fromEnv ??= createCheckpointHandler(depsFromEnv()))(event, context);

// The local runtime builds this function through the same factory (src/runtime/functions.ts).
createCheckpointHandler satisfies FunctionFactories["checkpoint"]["createCheckpointHandler"];
