/**
 * One job machinery for both modes: `fit` is a job in train mode, `transform` the same job in
 * inference mode. Starts the job through the coordinator, watches it, collects inference
 * output, and always cleans up: final state, queues deleted, processes stopped.
 */

import type { ModelMetadata } from "../protocol/model-metadata.ts";
import { trainCompletion } from "../jobs/completion.ts";
import { OutputRows, pollOutput } from "../jobs/output-rows.ts";
import type { InProcessRuntime, JobOutcome, RunOptions } from "./job-runtime.ts";
import { dataMembers } from "../protocol/spec.ts";
import { JobFailedError, watchJob } from "../jobs/watch.ts";
import { finishJob } from "../jobs/finish.ts";
import { type JobRequest } from "../protocol/start-request.ts";
import { type StartedJob } from "../jobs/started-job.ts";
import { ROW_ID } from "../protocol/feed-messages.ts";

/** A bounded job run from this process: started through the coordinator's core, watched here, finished here. */
export async function runJob(runtime: InProcessRuntime, request: JobRequest, options: RunOptions = {}): Promise<JobOutcome> {
  runtime.acquire();
  let started: StartedJob | undefined;
  try {
    started = await runtime.startJob(options.jobId ? { ...request, jobId: options.jobId } : request, { hooks: options.onProgress ? { onProgress: options.onProgress } : {} });
    const spec = started.spec;
    options.onStarted?.(spec.jobId);
    const { timeoutMs, maxWorkerRestarts, progressTimeoutMs, onRestart } = options;
    const watch = { timeoutMs, maxWorkerRestarts, progressTimeoutMs, onRestart };
    let outcome: JobOutcome;
    if (spec.mode === "inference") {
      const output = new OutputRows(spec.output!.columns, dataMembers(spec.cluster));
      await watchJob(runtime.deps, started, { ...watch, pollMs: 0, done: async () => (await pollOutput(runtime.deps.clients, spec.queues.output, output), output.complete) });
      outcome = { mode: "inference", jobId: spec.jobId, rows: output.rows };
    } else {
      let model: ModelMetadata | null = null;
      await watchJob(runtime.deps, started, {
        ...watch,
        done: async () => {
          const checked = await trainCompletion(runtime.deps, spec, await runtime.deps.registry.members(spec.jobId));
          if (checked.completion.kind === "failed") throw new JobFailedError(spec.jobId, checked.completion.reason);
          model = checked.model;
          return checked.completion.kind === "complete";
        },
      });
      outcome = { mode: "train", jobId: spec.jobId, model };
    }
    await finishJob(runtime.deps, started, { ok: true });
    return outcome;
  } catch (e) {
    if (started) await finishJob(runtime.deps, started, { ok: false, error: (e as Error).message });
    throw e;
  } finally {
    await runtime.release();
  }
}

export { ROW_ID };
