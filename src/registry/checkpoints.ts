/**
 * The checkpoint items (`checkpoint#<step, 12 digits>`): one per published checkpoint, the
 * padded step making sort key order step order. A checkpoint is put in one transaction with a
 * check that its writer still holds its lease (epoch, ACTIVE, not lapsed), so a fenced worker
 * cannot publish over its replacement. The same step again replaces it.
 */
import { memberKey } from "../protocol/names.ts";
import { PREFIX, checkCount, checkName, jobIdOf, keys, num, str, type Item, type Items } from "./items.ts";
import { fenced, holdsLease } from "./members.ts";
import type { CheckpointInput, CheckpointRecord } from "./types.ts";

function toCheckpoint(item: Item): CheckpointRecord {
  return {
    jobId: jobIdOf(item),
    step: num(item, "step"),
    uri: str(item, "uri"),
    feedPosition: num(item, "feedPosition"),
    member: str(item, "member"),
    createdAt: num(item, "createdAt"),
  };
}

export async function recordCheckpoint(items: Items, jobId: string, checkpoint: CheckpointInput): Promise<CheckpointRecord> {
  const now = items.now();
  const { role, index, epoch } = checkpoint.writer;
  const item: Item = {
    ...keys.checkpoint(jobId, checkpoint.step),
    step: { N: String(checkpoint.step) },
    uri: { S: checkName("uri", checkpoint.uri) },
    feedPosition: { N: String(checkCount("feedPosition", checkpoint.feedPosition)) },
    member: { S: memberKey(role, index) },
    createdAt: { N: String(now) },
    expiresAt: items.expiresAt(now),
  };
  const writerKey = keys.member(jobId, role, index);
  if (!(await items.putGuarded(item, writerKey, holdsLease(epoch, now)))) throw fenced({ jobId, role, index, epoch }, await items.get(writerKey), now);
  return toCheckpoint(item);
}

export async function latestCheckpoint(items: Items, jobId: string): Promise<CheckpointRecord | undefined> {
  const item = await items.last(jobId, PREFIX.checkpoint);
  return item && toCheckpoint(item);
}
