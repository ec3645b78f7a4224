/**
 * The shard items (`shard#<shardId>`): how far the feed of one input shard got. Progress only
 * moves forward: a put is conditional on the stored cursor and sequence being no further than the
 * new ones and on the shard not being done yet (unless this put finishes it), so a retried or
 * stale continuation cannot rewind a shard or reopen a finished one. The same progress again is
 * accepted.
 */
import { ShardRewindError } from "./errors.ts";
import { PREFIX, bool, checkCount, json, jobIdOf, keys, num, skSuffix, type Item, type Items } from "./items.ts";
import type { ShardProgress, ShardRecord } from "./types.ts";

function toShard(item: Item): ShardRecord {
  return {
    jobId: jobIdOf(item),
    shardId: skSuffix(item, PREFIX.shard),
    cursor: num(item, "cursor"),
    seq: num(item, "seq"),
    done: bool(item, "done"),
    rowsPerMember: json<Record<string, number>>(item, "rowsPerMember"),
    messagesPerMember: json<Record<string, number>>(item, "messagesPerMember"),
  };
}

export async function recordShardProgress(items: Items, jobId: string, shardId: string, progress: ShardProgress): Promise<ShardRecord> {
  const item: Item = {
    ...keys.shard(jobId, shardId),
    cursor: { N: String(checkCount("cursor", progress.cursor)) },
    seq: { N: String(checkCount("seq", progress.seq)) },
    done: { BOOL: progress.done },
    rowsPerMember: { S: JSON.stringify(progress.rowsPerMember) },
    messagesPerMember: { S: JSON.stringify(progress.messagesPerMember) },
    expiresAt: items.expiresAt(items.now()),
  };
  const r = await items.put(item, {
    expression: `attribute_not_exists(sk) OR (#cursor <= :cursor AND #seq <= :seq${progress.done ? "" : " AND #done = :false"})`,
    names: { "#cursor": "cursor", "#seq": "seq", ...(progress.done ? {} : { "#done": "done" }) },
    values: { ":cursor": item.cursor!, ":seq": item.seq!, ...(progress.done ? {} : { ":false": { BOOL: false } }) },
  });
  if (!r.ok) {
    const current = r.current ? toShard(r.current) : { cursor: 0, seq: 0, done: false };
    throw new ShardRewindError(jobId, shardId, progress, { cursor: current.cursor, seq: current.seq, done: current.done });
  }
  return toShard(item);
}

export async function getShard(items: Items, jobId: string, shardId: string): Promise<ShardRecord | undefined> {
  const item = await items.get(keys.shard(jobId, shardId));
  return item && toShard(item);
}

export async function shards(items: Items, jobId: string): Promise<ShardRecord[]> {
  return (await items.queryAll(jobId, PREFIX.shard)).map(toShard);
}
