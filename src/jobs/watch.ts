/**
 * Waits for a job to end, and never forever: it fails as soon as the registry says FAILED, a
 * member reports FAILED, a worker process exits without finishing, or a member's lease lapses
 * (no heartbeat), each with the member, its reason and its traceback tail.
 */
import { ServerlessTfError } from "../errors.ts";
import type { JobDeps } from "./deps.ts";
import type { StartedJob } from "../coordinator/coordinator.ts";

export class JobFailedError extends ServerlessTfError {
  constructor(
    readonly jobId: string,
    readonly reason: string,
    readonly member?: string,
    readonly tail?: string,
  ) {
    super(`job ${jobId} failed${member ? ` on ${member}` : ""}: ${reason}${tail ? `\n--- last lines of ${member ?? "the worker"} ---\n${tail}` : ""}`);
  }
}

export class JobTimeoutError extends ServerlessTfError {}

export interface WatchOptions {
  readonly timeoutMs?: number;
  readonly pollMs?: number;
  /** Extra grace after a lease's expiry before the member counts as gone. */
  readonly leaseGraceMs?: number;
  /** Checked every round after the failure checks; the watch ends when it returns true. */
  readonly done: () => Promise<boolean>;
}

export async function watchJob(deps: JobDeps, started: StartedJob, options: WatchOptions): Promise<void> {
  const { jobId } = started.spec;
  const deadline = Date.now() + (options.timeoutMs ?? 30 * 60_000);
  const pollMs = options.pollMs ?? 250;
  for (;;) {
    const job = await deps.registry.getJob(jobId);
    if (job?.state === "FAILED") throw new JobFailedError(jobId, job.error ?? "no reason recorded");
    const members = await deps.registry.members(jobId);
    const failed = members.find((m) => m.status === "FAILED");
    if (failed) throw new JobFailedError(jobId, failed.error ?? "no reason recorded", `${failed.role}-${failed.index}`);
    for (const exit of started.workers.exits) {
      const name = `${exit.member.role}-${exit.member.index}`;
      const record = members.find((m) => m.role === exit.member.role && m.index === exit.member.index);
      if (exit.code !== 0 && record?.status !== "DONE") {
        // Give the member a moment to have written its FAILED status with the reason.
        const again = (await deps.registry.members(jobId)).find((m) => m.role === exit.member.role && m.index === exit.member.index);
        const reason = again?.status === "FAILED" ? again.error ?? "" : `the process exited with ${exit.signal ?? `code ${exit.code}`} before finishing`;
        throw new JobFailedError(jobId, reason, name, exit.tail);
      }
    }
    const now = Date.now();
    const lapsed = members.find((m) => m.status === "ACTIVE" && m.leaseExpiresAt + (options.leaseGraceMs ?? 5_000) < now);
    if (lapsed) {
      throw new JobFailedError(jobId, `no heartbeat since ${new Date(lapsed.heartbeatAt).toISOString()} (lease expired); last progress ${JSON.stringify(lapsed.progress ?? {})}`, `${lapsed.role}-${lapsed.index}`);
    }
    if (await options.done()) return;
    if (Date.now() > deadline) throw new JobTimeoutError(`job ${jobId} did not finish within ${options.timeoutMs ?? 30 * 60_000} ms; its members: ${members.map((m) => `${m.role}-${m.index}=${m.status}`).join(", ") || "none registered"}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
