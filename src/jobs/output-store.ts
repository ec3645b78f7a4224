/**
 * A bounded inference job's output, kept in S3 on AWS.
 *
 * Locally `runJob` reads the output queue while the job runs. On AWS nothing stays alive beside a
 * job, and finishing it deletes its queues, so the job-watch stage first moves the output queue
 * into S3 (`jobs/<jobId>/output/part-<hash of its message ids>.json`, each part the message bodies
 * of one receive) and only then finishes the job. A part is written (once: its key names exactly
 * its messages) before its messages are deleted: a round that dies in between, or a delete that
 * fails, leaves them to be received again into another part, and readers keep one row per row id,
 * so a row can be saved twice but never lost.
 */
import { createHash } from "node:crypto";
import type { AwsClients } from "../aws/clients.ts";
import type { Column } from "../codec/schema.ts";
import { ConfigError } from "../errors.ts";
import type { OutputMessage } from "../protocol/feed-messages.ts";
import { getJson, isPreconditionFailed, listKeys, putJson } from "../storage/objects.ts";
import { jobKeys } from "../protocol/names.ts";
import { OutputRows, type OutputRow } from "./output-rows.ts";
import type { Deps } from "./deps.ts";
import { JobNotFoundError } from "../registry/errors.ts";
import { queueDepth, takeMessages } from "./queues.ts";
import { dataMembers, type JobSpec } from "../protocol/spec.ts";
import { parseJobSpec } from "../protocol/spec.ts";

/** One saved part: the bodies of the output messages one receive returned, as sent. */
export interface OutputPart {
  readonly messages: readonly string[];
}

export interface SavedOutputProgress {
  /** The queue held nothing, visible or in flight, when the round stopped. */
  readonly drained: boolean;
  readonly messagesSaved: number;
}

/**
 * Moves what is on the job's output queue into S3 parts until the queue is empty or `budgetMs`
 * has passed (a Lambda round is bounded; the next round goes on).
 */
export async function saveOutputQueue(clients: AwsClients, spec: Pick<JobSpec, "jobId" | "bucket" | "queues">, budgetMs: number): Promise<SavedOutputProgress> {
  const deadline = Date.now() + budgetMs;
  let messagesSaved = 0;
  while (Date.now() < deadline) {
    const taken = await takeMessages(clients, spec.queues.output, async (messages) => {
      const ids = messages.map((m) => m.MessageId ?? "").sort();
      const key = jobKeys.outputPart(spec.jobId, createHash("sha256").update(ids.join("\n")).digest("hex").slice(0, 32));
      try {
        await putJson(clients, { bucket: spec.bucket, key }, { messages: messages.map((m) => m.Body ?? "") } satisfies OutputPart, { ifNoneMatch: "*" });
      } catch (e) {
        if (!isPreconditionFailed(e)) throw e; // the same messages, saved by an earlier try
      }
    });
    if (taken === 0) {
      const depth = await queueDepth(clients, spec.queues.output);
      if (depth.visible === 0 && depth.inFlight === 0) return { drained: true, messagesSaved };
      // In flight: taken by an earlier round that died; they come back after the visibility timeout.
    }
    messagesSaved += taken;
  }
  return { drained: false, messagesSaved };
}

/** What the saved parts add up to, counted from the messages' own fields (no row is decoded). */
export interface OutputTally {
  /** Rows in distinct rows messages (a message saved twice counts once). */
  readonly rows: number;
  /** Rows announced by the members whose end-of-output is saved. */
  readonly promised: number;
  /** Data members whose end-of-output is not saved. */
  readonly unfinished: readonly string[];
  /** Saved bodies that are not output messages. */
  readonly unreadable: number;
  readonly parts: number;
}

/** Reads every part with `parallel` requests at a time; `onBody` sees each saved message body. */
async function eachSavedBody(clients: AwsClients, spec: Pick<JobSpec, "jobId" | "bucket">, onBody: (body: string) => void, parallel = 16): Promise<number> {
  const keys = await listKeys(clients, { bucket: spec.bucket, key: jobKeys.output(spec.jobId) });
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, keys.length) }, async () => {
      while (next < keys.length) {
        const part = await getJson<OutputPart>(clients, { bucket: spec.bucket, key: keys[next++]!.key });
        for (const body of part?.value.messages ?? []) onBody(body);
      }
    }),
  );
  return keys.length;
}

/** Whether the saved output holds every row the workers announced, judged without decoding rows. */
export async function tallySavedOutput(clients: AwsClients, spec: Pick<JobSpec, "jobId" | "bucket" | "cluster">): Promise<OutputTally> {
  const counted = new Map<string, number>();
  const ended = new Map<string, number>();
  let unreadable = 0;
  const parts = await eachSavedBody(clients, spec, (body) => {
    let message: OutputMessage;
    try {
      message = JSON.parse(body) as OutputMessage;
    } catch {
      return void unreadable++;
    }
    if (message?.kind === "rows" && Number.isSafeInteger(message.count)) counted.set(`${message.member}#${message.seq}`, message.count);
    else if (message?.kind === "end-of-output" && Number.isSafeInteger(message.rows)) ended.set(message.member, message.rows);
    else unreadable++;
  });
  const members = dataMembers(spec.cluster);
  return {
    rows: [...counted.values()].reduce((a, b) => a + b, 0),
    promised: [...ended.values()].reduce((a, b) => a + b, 0),
    unfinished: members.filter((m) => !ended.has(m)),
    unreadable,
    parts,
  };
}

/**
 * Reads the saved output of an inference job: one row per row id.
 *
 * @example
 * const output = await readSavedOutput(clients, spec);
 * for (const [rowId, row] of output.rows) console.log(rowId, row);
 */
export async function readSavedOutput(clients: AwsClients, spec: Pick<JobSpec, "jobId" | "bucket" | "cluster"> & { readonly output: { readonly columns: readonly Column[] } | null }): Promise<OutputRows> {
  if (!spec.output) throw new ConfigError(`output of job ${spec.jobId}`, null, "output columns: only an inference job has output to read");
  const output = new OutputRows(spec.output.columns, dataMembers(spec.cluster));
  await eachSavedBody(clients, spec, (body) => output.accept(body));
  return output;
}

/**
 * The rows an inference job started on AWS left in S3, one per row id, its spec read from the
 * registry. Call it once the job is SUCCEEDED: before, the output may still be on its queue.
 *
 * @throws JobNotFoundError when the registry does not know `jobId`.
 * @example
 * const rows = await readJobOutput({ clients: createAwsClients(), registry }, "transform-2f9c1a");
 */
export async function readJobOutput(deps: Deps, jobId: string): Promise<ReadonlyMap<bigint, OutputRow>> {
  const job = await deps.registry.getJob(jobId);
  if (!job) throw new JobNotFoundError(jobId);
  return (await readSavedOutput(deps.clients, parseJobSpec(job.spec))).rows;
}
