/**
 * Which streaming job a source queue feeds, on a deployed stack: the stream-feed function gets
 * batches from an event source mapping, which says only which queue they came from. One item per
 * source queue (`stream#<queue name>` / `stream`) names the job and the mapping; the job's own item
 * names its source queue (`streamQueue`), so the job-watch function can detach it at the end.
 * A queue feeds one job at a time; a released stream can be taken by the next job.
 */
import { ConfigError } from "../errors.ts";
import { checkName, keys, optStr, str, type Item, type Items } from "./items.ts";

export interface StreamRecord {
  readonly queueName: string;
  readonly jobId: string;
  readonly mappingId?: string;
  readonly released: boolean;
}

const keyOf = (queueName: string): Item => ({ pk: { S: `stream#${checkName("queue", queueName)}` }, sk: { S: "stream" } });

function toStream(item: Item, queueName: string): StreamRecord {
  const mappingId = optStr(item, "mappingId");
  return { queueName, jobId: str(item, "jobId"), ...(mappingId ? { mappingId } : {}), released: item.released?.BOOL === true };
}

export async function streamOf(items: Items, queueName: string): Promise<StreamRecord | undefined> {
  const item = await items.get(keyOf(queueName));
  return item && toStream(item, queueName);
}

/**
 * Makes `queueName` the source of `jobId`: refused while another job holds it unreleased.
 *
 * @throws ConfigError naming the job that holds the queue.
 */
export async function claimStream(items: Items, queueName: string, jobId: string): Promise<void> {
  const written = await items.put(
    { ...keyOf(queueName), jobId: { S: jobId }, released: { BOOL: false } },
    { expression: "attribute_not_exists(pk) OR released = :yes OR jobId = :job", values: { ":yes": { BOOL: true }, ":job": { S: jobId } } },
  );
  if (!written.ok) {
    const holder = written.current ? str(written.current, "jobId") : "another job";
    throw new ConfigError("table", queueName, `a queue no running job reads: ${holder} streams from it (stop that job first)`);
  }
  const noted = await items.update(keys.job(jobId), { update: "SET #q = :q", condition: "attribute_exists(sk)", names: { "#q": "streamQueue" }, values: { ":q": { S: queueName } } });
  if (!noted.ok) throw new ConfigError("jobId", jobId, "a registered job");
}

export async function recordStreamMapping(items: Items, queueName: string, jobId: string, mappingId: string): Promise<void> {
  await items.update(keyOf(queueName), { update: "SET #m = :m", condition: "#job = :job", names: { "#m": "mappingId", "#job": "jobId" }, values: { ":m": { S: mappingId }, ":job": { S: jobId } } });
}

/** Frees the queue for the next job (only if `jobId` still holds it). */
export async function releaseStream(items: Items, queueName: string, jobId: string): Promise<void> {
  await items.update(keyOf(queueName), { update: "SET #rel = :yes", condition: "#job = :job", names: { "#rel": "released", "#job": "jobId" }, values: { ":yes": { BOOL: true }, ":job": { S: jobId } } });
}

/** The source queue a job streams from, from its own item. */
export async function streamQueueOf(items: Items, jobId: string): Promise<string | undefined> {
  const item = await items.get(keys.job(jobId));
  return item ? optStr(item, "streamQueue") : undefined;
}
