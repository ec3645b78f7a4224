import type { Deps } from "./deps.ts";
import { deleteJobQueues } from "./queues.ts";
import type { StartedJob } from "./started-job.ts";

/** Ends a job: final state, queues deleted (the DLQ stays for inspection), workers stopped. */
export async function finishJob(deps: Deps, started: StartedJob, outcome: { ok: true } | { ok: false; error: string }): Promise<void> {
  const { jobId } = started.spec;
  await started.stream?.detach();
  try {
    if (outcome.ok) await deps.registry.transitionJob(jobId, ["RUNNING"], "SUCCEEDED");
    else await deps.registry.transitionJob(jobId, ["CREATED", "RUNNING"], "FAILED", { error: outcome.error });
  } catch {
    // A job already final (a shard-feed failed it first) keeps its first outcome.
  } finally {
    await started.workers.stop();
    await deleteJobQueues(deps.clients, started.spec.queues);
  }
}
