/**
 * A bounded inference job's output, kept in S3 on AWS.
 *
 * Locally `runJob` reads the output queue while the job runs. On AWS nothing stays alive beside a
 * job, and finishing it deletes its queues, so the job-watch stage first moves the output queue
 * into S3 (`jobs/<jobId>/output/part-<first message id>.json`, each part the message bodies of one
 * receive) and only then finishes the job. A part is written before its messages are deleted: a
 * round that dies in between leaves them to be received again into another part, and readers keep
 * one row per row id, so a row can be saved twice but never lost.
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import type { AwsClients } from "../aws/clients.ts";
import type { Column } from "../coding/schema.ts";
import { ConfigError } from "../errors.ts";
import { getJson, listKeys, putJson } from "../storage/objects.ts";
import { jobKeys } from "./names.ts";
import { OutputRows } from "./output.ts";
import { queueDepth } from "./queues.ts";
import type { JobSpec } from "./spec.ts";
import { dataMembers } from "./spec.ts";

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
    const { Messages = [] } = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: spec.queues.output, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    if (!Messages.length) {
      const depth = await queueDepth(clients, spec.queues.output);
      if (depth.visible === 0 && depth.inFlight === 0) return { drained: true, messagesSaved };
      continue; // in flight: received by an earlier round that died; they come back after the visibility timeout
    }
    const part: OutputPart = { messages: Messages.map((m) => m.Body ?? "") };
    await putJson(clients, { bucket: spec.bucket, key: jobKeys.outputPart(spec.jobId, Messages[0]!.MessageId!) }, part);
    await clients.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: spec.queues.output, Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
    messagesSaved += Messages.length;
  }
  return { drained: false, messagesSaved };
}

/**
 * Reads the saved output of an inference job: one row per row id, and whether every data member's
 * end-of-output arrived with all the rows it announced.
 *
 * @example
 * const output = await readSavedOutput(clients, spec);
 * for (const [rowId, row] of output.rows) console.log(rowId, row);
 */
export async function readSavedOutput(clients: AwsClients, spec: Pick<JobSpec, "jobId" | "bucket" | "cluster"> & { readonly output: { readonly columns: readonly Column[] } | null }): Promise<OutputRows> {
  if (!spec.output) throw new ConfigError(`output of job ${spec.jobId}`, null, "output columns: only an inference job has output to read");
  const output = new OutputRows(spec.output.columns, dataMembers(spec.cluster));
  for (const { key } of await listKeys(clients, { bucket: spec.bucket, key: jobKeys.output(spec.jobId) })) {
    const part = await getJson<OutputPart>(clients, { bucket: spec.bucket, key });
    for (const body of part?.value.messages ?? []) output.accept(body);
  }
  return output;
}
