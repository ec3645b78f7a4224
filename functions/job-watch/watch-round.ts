/**
 * The job-watch function's core: on AWS nothing stays alive beside a job, so its watch runs one round per
 * SQS message. A round reads the registry and the workers' tasks (one DescribeTasks), makes the
 * decision the local watch makes (`decideWatchRound`), and then either queues the next round with
 * the updated state and a delay, restarts the member set, or finishes the job: final state, the
 * job's queues deleted, its tasks stopped (`finishJob`, as `runJob` does locally). An inference
 * job's output queue is moved to S3 before that (src/jobs/output-store.ts).
 */

import { type JobWatchMessage } from "../../src/protocol/watch-message.ts";
import type { LaunchedWorkers, WorkerLauncher } from "../../src/workers/launcher.ts";
import { FINAL_JOB_STATES } from "../../src/registry/types.ts";
import { JOB_WATCH } from "../../src/resources/definitions.ts";

import { jobCompletion } from "../../src/jobs/completion.ts";
import { jobKeys } from "../../src/protocol/names.ts";
import { saveOutputQueue, tallySavedOutput } from "../../src/jobs/output-store.ts";
import type { Deps } from "../../src/jobs/deps.ts";
import { allMembers } from "../../src/protocol/spec.ts";
import { failureError, observeJob, rejoinMember, restartMembers } from "../../src/jobs/watch.ts";
import { decideWatchRound } from "../../src/jobs/watch-round.ts";
import { finishJob } from "../../src/jobs/finish.ts";
import { parseJobSpec } from "../../src/protocol/spec.ts";

export interface JobWatchPorts {
  /** A launcher that can take over members launched elsewhere (the ECS launcher). */
  readonly launcher: WorkerLauncher;
  /** Queues the next round of a job after `delaySeconds`. */
  readonly send: (message: JobWatchMessage, delaySeconds: number) => Promise<void>;
  readonly delaySeconds?: number;
  /** How long a round may spend moving an inference job's output queue to S3. */
  readonly outputBudgetMs?: number;
  /** How long saved output may stay short of what was announced before the job fails. */
  readonly outputSettleMs?: number;
  /** Ends a streaming job's forwarding from its source queue (src/jobs/stream-mapping.ts). */
  readonly detachStream?: (jobId: string) => Promise<void>;
}

/** What a round did: the job goes on (with `attempt` after a restart) or has been finished. */
export type JobWatchOutcome =
  | { readonly jobId: string; readonly status: "watching"; readonly attempt: number }
  | { readonly jobId: string; readonly status: "succeeded" }
  | { readonly jobId: string; readonly status: "failed"; readonly error: string }
  /** Gone from the registry, or already final when the round came: the queues and tasks are cleaned up. */
  | { readonly jobId: string; readonly status: "ended" }
  /** Another message already claimed this round (a duplicated send): this one is dropped. */
  | { readonly jobId: string; readonly status: "duplicate"; readonly round: number };

/** One watch round of one job, delivered as the SQS message `messageId`. */
export async function runJobWatchRound(deps: Deps, message: JobWatchMessage, messageId: string, ports: JobWatchPorts): Promise<JobWatchOutcome> {
  const { jobId } = message;
  const job = await deps.registry.getJob(jobId);
  if (!job) return { jobId, status: "ended" };
  if (!(await deps.registry.claimWatchRound(jobId, message.round, messageId))) return { jobId, status: "duplicate", round: message.round };
  const spec = parseJobSpec(job.spec);
  const members = allMembers(spec.cluster);
  const workers: LaunchedWorkers = ports.launcher.attach?.(spec, members, message.workers) ?? noWorkers;
  const stream = !spec.bounded && ports.detachStream ? { stream: { detach: () => ports.detachStream!(jobId) } } : {};
  const finish = (outcome: { ok: true } | { ok: false; error: string }) => finishJob(deps, { spec, shards: [], workers, ...stream }, outcome);
  // The next round starts from this one; a short-output mark is carried only where it is set again.
  const { outputShortSince: _shortSince, ...carried } = message;
  const next = (state: JobWatchMessage["state"]): JobWatchMessage => ({ ...carried, round: message.round + 1, state, workers: workers.handles?.() ?? [] });
  if (FINAL_JOB_STATES.includes(job.state) && job.state !== "FAILED") {
    await finish({ ok: true }); // ended by someone else: what is left to clean up
    return { jobId, status: "ended" };
  }

  await workers.refresh?.();
  const observed = await observeJob(deps, jobId, workers.exits);
  const policy = workers.restart ? message.policy : { ...message.policy, maxWorkerRestarts: 0 };
  const decision = decideWatchRound({ ...observed, completion: await jobCompletion(deps, spec, observed.members) }, message.state, policy);
  switch (decision.kind) {
    case "succeed": {
      if (spec.mode === "inference") {
        // Finishing deletes the output queue: its rows go to S3 first, over as many rounds as it takes.
        const saved = await saveOutputQueue(deps.clients, spec, ports.outputBudgetMs ?? JOB_WATCH.outputBudgetMs);
        if (!saved.drained) {
          await ports.send(next(message.state), 0);
          return { jobId, status: "watching", attempt: message.state.attempt };
        }
        const tally = await tallySavedOutput(deps.clients, spec);
        if (tally.rows < tally.promised || tally.unfinished.length || tally.unreadable) {
          // SQS's counts are approximate: messages can be in flight while both read 0. Look again
          // after they would be visible again before judging the output short.
          const since = message.outputShortSince ?? Date.now();
          if (Date.now() - since < (ports.outputSettleMs ?? JOB_WATCH.outputSettleMs)) {
            await ports.send({ ...next(message.state), outputShortSince: since }, ports.delaySeconds ?? JOB_WATCH.roundDelaySeconds);
            return { jobId, status: "watching", attempt: message.state.attempt };
          }
          const error =
            `the output of job ${jobId} is incomplete after its queue was drained to s3://${spec.bucket}/${jobKeys.output(jobId)}: ${tally.rows} rows saved of ${tally.promised} announced` +
            `; members without end-of-output: ${tally.unfinished.join(", ") || "none"}; unreadable messages: ${tally.unreadable}. Rows that failed to send are in the job's DLQ (${spec.queues.dlq}, kept 14 days) or, if they never reached SQS, only in the workers' logs.`;
          await finish({ ok: false, error });
          return { jobId, status: "failed", error };
        }
      }
      await finish({ ok: true });
      return { jobId, status: "succeeded" };
    }
    case "fail": {
      const error = (await failureError(deps, jobId, decision.failure)).message;
      await finish({ ok: false, error });
      return { jobId, status: "failed", error };
    }
    case "restart":
      // A round delivered again after it restarted the set decides the same restart from the same
      // state: the set of that attempt is running, so it is not fenced; RunTask's client token
      // gives its tasks back for the next round's handles.
      if (await deps.registry.claimWatchAttempt(jobId, decision.attempt)) await restartMembers(deps, jobId, workers, decision);
      else await workers.restart!(decision.attempt);
      break;
    case "rejoin":
      // ECS cannot give a task back its address, so on AWS the chief goes on without the worker.
      await rejoinMember(deps, jobId, workers, decision, message.state.attempt);
      break;
    case "continue":
      break;
  }
  await ports.send(next(decision.state), ports.delaySeconds ?? JOB_WATCH.roundDelaySeconds);
  return { jobId, status: "watching", attempt: decision.state.attempt };
}

/** A launcher that cannot take members over: no exits, no restarts; the leases still tell. */
const noWorkers: LaunchedWorkers = { exits: [], stop: async () => undefined };
