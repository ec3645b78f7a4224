/**
 * The job item (`sk = job`): its creation, its state machine and the deletion of everything the
 * job owns. Creation is conditional on the item being absent and a transition on the state being
 * one of the expected ones; each write that finds its own earlier effect (an SDK retry whose
 * response was lost) is answered as if it had succeeded, so retries never surface as conflicts.
 */
import { ConfigError, ServerlessTfError } from "../errors.ts";
import { JobConflictError, JobNotFoundError, JobStateError } from "./errors.ts";
import { DEFAULT_RETENTION_SECONDS, checkCount, json, jobIdOf, keys, num, oneOf, optS, optStr, optional, setDefined, type Item, type Items } from "./items.ts";
import { JOB_MODES, JOB_STATES, type JobMode, type JobRecord, type JobSpecJson, type JobState } from "./types.ts";

export interface CreateJobInput {
  readonly jobId: string;
  readonly mode: JobMode;
  /** Stored as JSON; read back as {@link JobSpecJson} and parsed by its reader (src/protocol/spec.ts parseJobSpec). */
  readonly spec: object;
  /** TTL of the job item; default {@link DEFAULT_RETENTION_SECONDS}. */
  readonly retentionSeconds?: number;
}

/** What a transition may record besides the state. */
export interface JobPatch {
  readonly error?: string;
  readonly modelUri?: string;
}

function toJob(item: Item): JobRecord {
  return {
    jobId: jobIdOf(item),
    state: oneOf(item, "state", JOB_STATES),
    mode: oneOf(item, "mode", JOB_MODES),
    spec: json<JobSpecJson>(item, "spec"),
    rev: num(item, "rev"),
    createdAt: num(item, "createdAt"),
    updatedAt: num(item, "updatedAt"),
    ...optional("error", optStr(item, "error")),
    ...optional("modelUri", optStr(item, "modelUri")),
  };
}

/** Every job in the registry, newest first. */
export async function listJobs(items: Items): Promise<JobRecord[]> {
  return (await items.scanSortKey("job")).map(toJob).sort((a, b) => b.createdAt - a.createdAt);
}

export async function createJob(items: Items, input: CreateJobInput): Promise<JobRecord> {
  const now = items.now();
  const k = keys.job(input.jobId);
  if (!JOB_MODES.includes(input.mode)) throw new ConfigError("mode", input.mode, `one of ${JOB_MODES.join(", ")}`);
  const item: Item = {
    ...k,
    state: { S: "CREATED" },
    mode: { S: input.mode },
    spec: { S: JSON.stringify(input.spec) },
    rev: { N: "1" },
    createdAt: { N: String(now) },
    updatedAt: { N: String(now) },
    expiresAt: items.expiresAt(now, checkCount("retentionSeconds", input.retentionSeconds ?? DEFAULT_RETENTION_SECONDS, 1)),
  };
  const r = await items.put(item, { expression: "attribute_not_exists(sk)" });
  if (!r.ok) {
    // The same create again (an SDK retry after a response was lost) finds its own item: not a conflict.
    if (r.current?.spec?.S === item.spec!.S && r.current?.mode?.S === input.mode) return toJob(r.current);
    throw new JobConflictError(input.jobId, r.current?.state?.S as JobState | undefined);
  }
  return toJob(item);
}

export async function getJob(items: Items, jobId: string): Promise<JobRecord | undefined> {
  const item = await items.get(keys.job(jobId));
  return item && toJob(item);
}

export async function transitionJob(items: Items, jobId: string, from: readonly JobState[], to: JobState, patch: JobPatch = {}): Promise<JobRecord> {
  if (from.length === 0) throw new ConfigError("from", from, "at least one job state");
  const k = keys.job(jobId);
  const values: Item = { ":to": { S: to }, ":one": { N: "1" }, ":now": { N: String(items.now()) } };
  from.forEach((s, i) => (values[`:from${i}`] = { S: s }));
  const sets = ["#state = :to", "#rev = #rev + :one", "#updatedAt = :now"];
  const names: Record<string, string> = { "#state": "state", "#rev": "rev", "#updatedAt": "updatedAt" };
  setDefined(sets, names, values, { error: optS(patch.error), modelUri: optS(patch.modelUri) });
  const r = await items.update(k, {
    update: `SET ${sets.join(", ")}`,
    condition: `attribute_exists(sk) AND #state IN (${from.map((_, i) => `:from${i}`).join(", ")})`,
    names,
    values,
    returnNew: true,
  });
  if (!r.ok) {
    if (!r.current) throw new JobNotFoundError(jobId);
    // Already where this call moves it, with the same patch: a retried transition whose response was lost.
    const alreadyDone = r.current.state?.S === to && (patch.error === undefined || r.current.error?.S === patch.error) && (patch.modelUri === undefined || r.current.modelUri?.S === patch.modelUri);
    if (alreadyDone) return toJob(r.current);
    throw new JobStateError(jobId, from, oneOf(r.current, "state", JOB_STATES), to);
  }
  return toJob(r.item);
}

export async function deleteJob(items: Items, jobId: string): Promise<number> {
  const itemKeys = await items.queryAll(jobId, "", true);
  await items.deleteAll(itemKeys, (left, attempts) => new ServerlessTfError(`deleting job ${jobId}: ${left} items were still unprocessed after ${attempts} attempts (throttled). Call deleteJob again later.`));
  return itemKeys.length;
}
