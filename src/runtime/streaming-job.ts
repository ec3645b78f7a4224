/**
 * A streaming fit: a training job on an unbounded table that runs until stopped, publishing a
 * new model version every K steps or T seconds. `startStreamingJob` returns once the first
 * version is published; the handle stops the job (forwarder detached first, then a stop
 * message on the feed, so every row forwarded is trained on), and the worker's final export
 * becomes the last version.
 */
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import type { StopMessage } from "../protocol/feed-messages.ts";
import { checkModelMetadata, type ModelMetadata } from "../protocol/model-metadata.ts";
import { getJson } from "../storage/objects.ts";
import { parseS3Uri } from "../protocol/names.ts";
import type { InProcessRuntime, RunOptions, StreamingJob } from "./job-runtime.ts";
import { dataMembers } from "../protocol/spec.ts";
import { watchJob } from "../jobs/watch.ts";
import { finishJob } from "../jobs/finish.ts";
import { type JobRequest } from "../protocol/start-request.ts";
import { type StartedJob } from "../jobs/started-job.ts";
import type { Deps } from "../jobs/deps.ts";
import type { JobSpec } from "../protocol/spec.ts";


export async function startStreamingJob(runtime: InProcessRuntime, request: JobRequest, options: RunOptions = {}): Promise<{ job: StreamingJob; first: ModelMetadata }> {
  runtime.acquire();
  let started: StartedJob;
  try {
    started = await runtime.startJob(request, { hooks: options.onProgress ? { onProgress: options.onProgress } : {} });
  } catch (e) {
    await runtime.release();
    throw e;
  }
  const { spec } = started;
  const { deps } = runtime;
  let stopping = false;
  // Restarting a streaming worker would replay nothing (the forwarded rows are acked), and a
  // worker waiting for rows makes no progress by design: neither watchdog applies.
  const watched = watchJob(deps, started, {
    timeoutMs: Number.MAX_SAFE_INTEGER,
    maxWorkerRestarts: 0,
    progressTimeoutMs: 0,
    done: async () => stopping && (await deps.registry.members(spec.jobId)).every((m) => m.status === "DONE"),
  });
  const done = watched.then(
    () => finishJob(deps, started, { ok: true }),
    async (e: unknown) => {
      await finishJob(deps, started, { ok: false, error: (e as Error).message });
      throw e;
    },
  ).finally(() => runtime.release());
  done.catch(() => undefined); // observed through the handle

  const job: StreamingJob = {
    jobId: spec.jobId,
    done,
    async stop() {
      if (!stopping) {
        stopping = true;
        await started.stream?.detach();
        await sendStop(deps, spec);
      }
      await done;
    },
  };

  return { job, first: await firstVersion(deps, spec.jobId, done, options.timeoutMs ?? 30 * 60_000, () => job.stop()) };
}

/** Tells a streaming job's workers to train on what they were sent, export once more and finish. */
export async function sendStop(deps: Deps, spec: JobSpec): Promise<void> {
  const stop: StopMessage = { v: 1, kind: "stop", job: spec.jobId };
  await Promise.all(dataMembers(spec.cluster).map((m) => deps.clients.sqs.send(new SendMessageCommand({ QueueUrl: spec.queues.feed[m], MessageBody: JSON.stringify(stop) }))));
}

/**
 * A streaming job's first published version: the checkpoint stage records each publication as the
 * job's modelUri. Fails as `done` does, or after `timeoutMs` (stopping the job).
 */
export async function firstVersion(deps: Deps, jobId: string, done: Promise<void>, timeoutMs: number, stop: () => Promise<void>): Promise<ModelMetadata> {
  const deadline = Date.now() + timeoutMs;
  let failure: unknown;
  done.catch((e: unknown) => (failure = e));
  for (;;) {
    if (failure) throw failure;
    const uri = (await deps.registry.getJob(jobId))?.modelUri;
    if (uri) {
      const found = await getJson<unknown>(deps.clients, parseS3Uri(uri, "modelUri"));
      if (found) return checkModelMetadata(found.value, uri);
    }
    if (Date.now() > deadline) {
      await stop().catch(() => undefined);
      throw new Error(`streaming job ${jobId} published no model version within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
