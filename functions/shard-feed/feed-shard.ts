/**
 * Shard-feed: reads one shard of a bounded table, validates and encodes its rows, and sends
 * them to the workers' feed queues in messages under the SQS size limit.
 *
 * A retry (or a continuation after a Lambda timeout) resumes from the cursor recorded in the
 * registry after every chunk; packing from a given cursor is deterministic, so a chunk sent
 * twice carries the same feed ids and the workers drop the copy.
 */
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { SchemaError } from "../../src/codec/errors.ts";
import { createEncoder } from "../../src/codec/example.ts";
import { packDeflatedRecords } from "../../src/codec/tfrecord.ts";
import type { Deps } from "../../src/jobs/deps.ts";
import type { MemberKey } from "../../src/protocol/names.ts";
import { planSteps, RemainderError } from "../../src/protocol/remainder.ts";
import { dataMembers, type JobSpec } from "../../src/protocol/spec.ts";
import { feedId, ROW_ID, ROW_ID_COLUMN, rowId, rowsEnvelopeBytes, type EndOfDataMessage, type RowsMessage } from "../../src/protocol/feed-messages.ts";
import { MAX_INFLATED_FEED_BYTES, SQS_MAX_MESSAGE_BYTES } from "../../src/protocol/limits.ts";
import type { ShardFeedEvent } from "../../src/protocol/shard-feed-request.ts";
import { parseJobSpec } from "../../src/protocol/spec.ts";
import { ShardReadError, shardRowChunks } from "./shard-rows.ts";

export { ShardReadError };

export type ShardFeedResult = { readonly status: "done" | "continue" | "skipped"; readonly cursor: number };

export interface FeedOptions {
  /** Milliseconds left before the platform stops this invocation. */
  readonly remainingMs?: () => number;
  /** Stop and hand over to a continuation when less than this is left. */
  readonly marginMs?: number;
  readonly chunkRows?: number;
  readonly maxBodyBytes?: number;
}


/**
 * Milliseconds this process's shard-feeds spent per stage, over all shards since the last reset:
 * `read` (S3 read and row parsing: waiting on the shard's row stream), `encode` (tf.Example),
 * `pack` (framing, base64 and the message JSON), `send` (SQS), `record` (the cursor in the
 * registry), and when the last shard's rows were all sent (`lastEndedAt`, epoch ms). The bench
 * prints them beside the feed's rate (bench/feed.ts).
 */
export const shardFeedStageMs = { read: 0, encode: 0, pack: 0, send: 0, record: 0, rows: 0, lastEndedAt: 0 };

export function resetShardFeedStages(): void {
  for (const key of Object.keys(shardFeedStageMs) as (keyof typeof shardFeedStageMs)[]) shardFeedStageMs[key] = 0;
}

export function memberForRow(members: readonly MemberKey[], shardIndex: number, row: number): MemberKey {
  return members[(shardIndex + row) % members.length]!;
}

export async function feedShard(deps: Deps, event: ShardFeedEvent, options: FeedOptions = {}): Promise<ShardFeedResult> {
  const { jobId, shard } = event;
  const job = await deps.registry.getJob(jobId);
  if (!job) throw new ShardReadError(`job ${jobId} is not in the registry: the shard-feed event is stale or for another table`);
  if (["SUCCEEDED", "FAILED", "STOPPED", "STOPPING"].includes(job.state)) return { status: "skipped", cursor: 0 };
  const spec = parseJobSpec(job.spec);
  const members = dataMembers(spec.cluster);
  const progress = (await deps.registry.getShard(jobId, shard.shardId)) ?? { cursor: 0, seq: 0, done: false, rowsPerMember: {}, messagesPerMember: {} };
  if (progress.done) {
    await sendEndOfDataWhenComplete(deps, spec);
    return { status: "done", cursor: progress.cursor };
  }
  const remainingMs = options.remainingMs ?? (() => Number.POSITIVE_INFINITY);
  const marginMs = options.marginMs ?? 15_000;
  const chunkRows = options.chunkRows ?? 4096;
  const maxBodyBytes = options.maxBodyBytes ?? SQS_MAX_MESSAGE_BYTES;
  const withRowIds = spec.mode === "inference";

  try {
    const encoder = createEncoder(withRowIds ? [...spec.input.columns, ROW_ID_COLUMN] : spec.input.columns);
    let { cursor, seq } = progress;
    const rowsPerMember: Record<string, number> = { ...progress.rowsPerMember };
    const messagesPerMember: Record<string, number> = { ...progress.messagesPerMember };
    let done = false;
    const t = shardFeedStageMs;
    let mark = performance.now();
    const lap = (stage: keyof typeof shardFeedStageMs) => {
      const now = performance.now();
      t[stage] += now - mark;
      mark = now;
    };
    for await (const chunk of shardRowChunks(deps, shard, spec.input.columns, cursor, chunkRows)) {
      lap("read");
      if (remainingMs() < marginMs) return { status: "continue", cursor };
      const end = chunk.first + chunk.rows.length;
      const perMember = new Map<MemberKey, Uint8Array[]>();
      for (let r = cursor; r < end; r++) {
        const source = chunk.rows[r - chunk.first]!;
        const row = withRowIds ? { ...source, [ROW_ID]: rowId(shard.index, r) } : source;
        const member = memberForRow(members, shard.index, r);
        const list = perMember.get(member) ?? [];
        list.push(encoder.encode(row, r));
        perMember.set(member, list);
      }
      lap("encode");
      const sends: Promise<unknown>[] = [];
      for (const member of members) {
        const records = perMember.get(member);
        if (!records?.length) continue;
        const envelopeBytes = rowsEnvelopeBytes(jobId, shard.shardId, member);
        for (const group of await packDeflatedRecords(records, { maxBodyBytes, envelopeBytes, firstRowIndex: cursor, maxInflatedBytes: MAX_INFLATED_FEED_BYTES })) {
          const message: RowsMessage = { v: 1, kind: "rows", job: jobId, shard: shard.shardId, seq, member, count: group.count, encoding: "deflate", data: group.data };
          const body = JSON.stringify(message);
          sends.push(
            deps.clients.sqs.send(
              new SendMessageCommand({
                QueueUrl: spec.queues.feed[member],
                MessageBody: body,
                MessageAttributes: { feedId: { DataType: "String", StringValue: feedId(shard.shardId, seq, member) } },
              }),
            ),
          );
          seq += 1;
          rowsPerMember[member] = (rowsPerMember[member] ?? 0) + group.count;
          messagesPerMember[member] = (messagesPerMember[member] ?? 0) + 1;
        }
      }
      // Packing, framing, deflate, base64 and JSON, and each send's start (its request is built and signed as it goes out).
      lap("pack");
      await Promise.all(sends);
      lap("send");
      t.lastEndedAt = Math.max(t.lastEndedAt, Date.now());
      cursor = end;
      t.rows += chunk.rows.length;
      // The last chunk's cursor write also marks the shard done: a registry write fewer.
      done = chunk.last;
      await deps.registry.recordShardProgress(jobId, shard.shardId, { cursor, seq, done, rowsPerMember, messagesPerMember });
      lap("record");
    }
    // The stream ended: every row is sent.
    if (!done) await deps.registry.recordShardProgress(jobId, shard.shardId, { cursor, seq, done: true, rowsPerMember, messagesPerMember });
    await sendEndOfDataWhenComplete(deps, spec);
    return { status: "done", cursor };
  } catch (e) {
    if (e instanceof SchemaError || e instanceof ShardReadError || e instanceof RemainderError) {
      await failJob(deps, jobId, `shard ${shard.shardId} (${shard.uri}): ${e.message}`);
    }
    throw e;
  }
}

async function failJob(deps: Deps, jobId: string, error: string): Promise<void> {
  try {
    await deps.registry.transitionJob(jobId, ["CREATED", "RUNNING"], "FAILED", { error });
  } catch {
    // already final: the first failure is the one users see
  }
}

/**
 * When every planned shard is fed, tells each member how many rows and messages it gets and
 * how many steps every member runs. Any shard-feed may be the last; a second copy of the
 * message is harmless because workers keep the first.
 */
export async function sendEndOfDataWhenComplete(deps: Deps, spec: JobSpec): Promise<boolean> {
  const shards = await deps.registry.shards(spec.jobId);
  if (shards.length === 0 || !shards.every((s) => s.done)) return false;
  const members = dataMembers(spec.cluster);
  const rows = members.map((m) => shards.reduce((sum, s) => sum + (s.rowsPerMember[m] ?? 0), 0));
  const messages = members.map((m) => shards.reduce((sum, s) => sum + (s.messagesPerMember[m] ?? 0), 0));
  const { steps } = spec.mode === "train" ? planSteps(rows, spec.batchSize, spec.remainder) : { steps: 0 };
  await Promise.all(
    members.map((member, i) => {
      const message: EndOfDataMessage = { v: 1, kind: "end-of-data", job: spec.jobId, member, rows: rows[i]!, messages: messages[i]!, steps };
      return deps.clients.sqs.send(new SendMessageCommand({ QueueUrl: spec.queues.feed[member], MessageBody: JSON.stringify(message) }));
    }),
  );
  return true;
}
