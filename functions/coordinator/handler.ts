/**
 * Lambda: starts a job. Invoked with `{ "action": "start", "request": <JobRequest> }` (docs/protocol.md
 * JobSpec fields, scripts as s3:// URIs); returns the job id at once; the job runs on its workers.
 *
 * A request that can never succeed (bad shape, invalid settings, a job id already taken) is
 * answered with `status: "rejected"` and the typed error, so an asynchronous invocation is not
 * retried; anything else is thrown, so Lambda reports and retries it.
 */
import { SchemaError } from "../../src/coding/errors.ts";
import { startJob, type CoordinatorPorts } from "../../src/coordinator/coordinator.ts";
import { ServerlessTfError, ConfigError } from "../../src/errors.ts";
import { parseCoordinatorEvent } from "../../src/events/coordinator-event.ts";
import { EventShapeError } from "../../src/events/errors.ts";
import { allMembers } from "../../src/jobs/spec.ts";
import { sendShardFeedRequest } from "../../src/feed/dispatch.ts";
import { launcherFromEnv } from "../../src/launch/from-env.ts";
import { JobConflictError } from "../../src/registry/errors.ts";
import { stageDeps } from "../../src/stage/deps.ts";

export type CoordinatorResponse =
  | { readonly status: "started"; readonly jobId: string; readonly mode: "train" | "inference"; readonly members: readonly string[]; readonly shards: number }
  | { readonly status: "rejected"; readonly error: { readonly type: string; readonly message: string } };

const REJECTED: readonly (abstract new (...args: never[]) => ServerlessTfError)[] = [EventShapeError, ConfigError, SchemaError, JobConflictError];

let ports: CoordinatorPorts | undefined;

export const handler = async (event: unknown): Promise<CoordinatorResponse> => {
  try {
    const deps = stageDeps();
    const { request } = parseCoordinatorEvent(event, { bucket: deps.config.bucket });
    ports ??= { launcher: launcherFromEnv(deps.config), dispatchShard: (e) => sendShardFeedRequest(deps, e) };
    const started = await startJob(deps, request, ports);
    const { spec } = started;
    return { status: "started", jobId: spec.jobId, mode: spec.mode, members: allMembers(spec.cluster).map((m) => `${m.role}-${m.index}`), shards: started.shards.length };
  } catch (e) {
    if (REJECTED.some((type) => e instanceof type)) return { status: "rejected", error: { type: (e as Error).name, message: (e as Error).message } };
    throw e;
  }
};
