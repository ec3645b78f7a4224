/**
 * Lambda: one watch round per message from the `<prefix>-job-watch` queue (src/jobs/job-watch-stage.ts):
 * decides as the local watch does, then queues the next round, restarts the workers, or finishes the job.
 */
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { runJobWatchBatch, sendJobWatchMessage, type JobWatchPorts } from "./watch-round.ts";
import { launcherFromEnv } from "../../src/workers/from-env.ts";
import { stageDeps, type StageDeps } from "../../src/jobs/deps-from-env.ts";

let ports: JobWatchPorts | undefined;
const portsOf = (deps: StageDeps): JobWatchPorts => (ports ??= { launcher: launcherFromEnv(deps.config), send: (message, delay) => sendJobWatchMessage(deps, message, delay) });

export const handler = async (event: SQSEvent): Promise<SQSBatchResponse> => {
  const deps = stageDeps();
  const { batchItemFailures } = await runJobWatchBatch(deps, event, portsOf(deps));
  return { batchItemFailures };
};
