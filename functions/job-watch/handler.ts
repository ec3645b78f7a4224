/**
 * Lambda: one watch round per message from the `<prefix>-job-watch` queue (./watch-round.ts):
 * decides as the local watch does, then queues the next round, restarts the workers, or finishes
 * the job. A failed round comes back from SQS, and after the redrive count lands in the DLQ.
 */
import { processSqsBatch } from "../../src/aws/sqs-batch.ts";
import { depsFromEnv, type Deps } from "../../src/jobs/deps.ts";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { unmapStream } from "../../src/jobs/stream-mapping.ts";
import { sendJobWatchMessage } from "../../src/jobs/watch-queue.ts";
import { EventShapeError } from "../../src/protocol/errors.ts";
import { parseJobWatchEvent } from "../../src/protocol/watch-message.ts";
import type { SqsHandler } from "../../src/runtime/functions.ts";
import { launcherFromEnv } from "../../src/workers/from-env.ts";
import { runJobWatchRound, type JobWatchPorts } from "./watch-round.ts";

export function createJobWatchHandler(deps: Deps, ports: JobWatchPorts, log: (line: string) => void = (line) => console.error(line)): SqsHandler {
  return (event) =>
    processSqsBatch(
      event,
      async (record) => {
        const outcome = await runJobWatchRound(deps, parseJobWatchEvent(record.body), record.messageId, ports);
        if (outcome.status !== "watching") log(`[job-watch] job ${outcome.jobId} ${outcome.status}${outcome.status === "failed" ? `: ${outcome.error}` : ""}`);
      },
      // A malformed message never becomes valid: let it go instead of cycling to the DLQ.
      { name: "job-watch", isFinal: (e) => e instanceof EventShapeError, log },
    );
}

let fromEnv: SqsHandler | undefined;

export const handler: SqsHandler = (event, context) => {
  if (!fromEnv) {
    const deps = depsFromEnv();
    const lambda = new LambdaClient({});
    fromEnv = createJobWatchHandler(deps, {
      launcher: launcherFromEnv(deps.config),
      send: (message, delay) => sendJobWatchMessage(deps, message, delay),
      detachStream: (jobId) => unmapStream(deps, lambda, jobId),
    });
  }
  return fromEnv(event, context);
};
