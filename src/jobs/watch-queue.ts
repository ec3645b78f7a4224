/**
 * The job-watch queue's sending side: a job started on AWS is put under watch by queueing its
 * first round; each round (functions/job-watch/) queues the next.
 */
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { ConfigError } from "../errors.ts";
import type { JobWatchMessage, WatchPolicy } from "../protocol/watch-message.ts";
import { JOB_WATCH } from "../resources/definitions.ts";
import type { FunctionDeps } from "./deps.ts";
import type { StartedJob } from "./started-job.ts";
import { initialWatchState } from "./watch-round.ts";

/**
 * The first watch message of a started job, under the stack's `JOB_WATCH.policy` with the job's
 * own settings over it.
 *
 * @example
 * await sendJobWatchMessage(deps, firstWatchMessage(started, { maxWorkerRestarts: 0 }), JOB_WATCH.roundDelaySeconds);
 */
export function firstWatchMessage(started: Pick<StartedJob, "spec" | "workers">, overrides: Partial<WatchPolicy> = {}, now = Date.now()): JobWatchMessage {
  return { v: 1, jobId: started.spec.jobId, round: 0, state: initialWatchState(now), policy: { ...JOB_WATCH.policy, ...overrides }, workers: started.workers.handles?.() ?? [] };
}

/**
 * Queues a watch round on the job-watch queue.
 *
 * @throws ConfigError when `SERVERLESS_TF_JOB_WATCH_QUEUE_URL` is not configured.
 */
export async function sendJobWatchMessage(deps: Pick<FunctionDeps, "clients" | "config">, message: JobWatchMessage, delaySeconds: number): Promise<void> {
  const QueueUrl = deps.config.jobWatchQueueUrl;
  if (!QueueUrl) throw new ConfigError("SERVERLESS_TF_JOB_WATCH_QUEUE_URL", QueueUrl, "the URL of the job-watch queue, where each watch round is queued");
  // SQS: DelaySeconds is 0 to 900.
  await deps.clients.sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: JSON.stringify(message), DelaySeconds: Math.min(900, Math.max(0, Math.round(delaySeconds))) }));
}

/**
 * Puts a job just started on AWS under watch: its first round, `JOB_WATCH.roundDelaySeconds` from
 * now, with `JOB_WATCH.policy` overridden by the start's own settings. Without a job-watch queue
 * configured (a coordinator run outside the stack) it does nothing: the caller watches, as
 * `runJob` does.
 */
export async function watchStartedJob(deps: Pick<FunctionDeps, "clients" | "config">, started: Pick<StartedJob, "spec" | "workers">, overrides: Partial<WatchPolicy> = {}): Promise<boolean> {
  if (!deps.config.jobWatchQueueUrl) return false;
  await sendJobWatchMessage(deps, firstWatchMessage(started, overrides), JOB_WATCH.roundDelaySeconds);
  return true;
}

