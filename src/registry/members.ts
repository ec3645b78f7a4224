/**
 * The member items (`member#<role>#<index>`), one per slot of the cluster: registration, leases,
 * heartbeats and the final status. A registration takes the slot only when no live member holds
 * it and moves its epoch up by one; every later write by the member is conditional on that epoch,
 * status ACTIVE and (for lease renewals) an unlapsed lease, so a replaced process is fenced: its
 * writes fail with {@link FencedError} instead of landing over its replacement's.
 *
 * Leases are judged by comparing `leaseExpiresAt` with the injected clock, never by TTL: DynamoDB
 * deletes expired items only eventually and moto never does.
 */
import { ConfigError } from "../errors.ts";
import { ROLES, type MemberRef } from "../protocol/names.ts";
import { FencedError, MemberConflictError } from "./errors.ts";
import { PREFIX, checkCount, checkName, jobIdOf, keys, num, oneOf, optS, optStr, optional, setDefined, sleep, str, type Item, type Items } from "./items.ts";
import { MEMBER_STATUSES, type MemberProgress, type MemberRecord } from "./types.ts";

/** One slot of one job's cluster. */
export interface MemberSlot extends MemberRef {
  readonly jobId: string;
}

export interface RegisterInput extends MemberSlot {
  /** `host:port` other members reach this one at. */
  readonly address: string;
  readonly pid: number;
  readonly leaseMs: number;
}

export interface Lease {
  readonly epoch: number;
  readonly leaseExpiresAt: number;
}

/** A member as its own writes name it: the slot and the epoch of its lease. */
export interface MemberWriter extends MemberSlot {
  readonly epoch: number;
}

export interface HeartbeatInput extends MemberWriter {
  readonly leaseMs: number;
  readonly progress?: MemberProgress;
}

export interface MarkMemberInput extends MemberWriter {
  readonly status: "DONE" | "FAILED";
  readonly error?: string;
}

/** A worker's last epoch values: JSON text it wrote itself, so a malformed one is dropped, not fatal. */
function lastEpochOf(progress: Item): Record<string, unknown> | undefined {
  const text = progress.lastEpoch?.S;
  if (!text) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function toMember(item: Item): MemberRecord {
  const progress = item.progress?.M;
  return {
    jobId: jobIdOf(item),
    role: oneOf(item, "role", ROLES),
    index: num(item, "index"),
    address: str(item, "address"),
    epoch: num(item, "epoch"),
    leaseExpiresAt: num(item, "leaseExpiresAt"),
    heartbeatAt: num(item, "heartbeatAt"),
    status: oneOf(item, "status", MEMBER_STATUSES),
    pid: num(item, "pid"),
    ...optional("progress", progress && { step: num(progress, "step"), rowsConsumed: num(progress, "rowsConsumed"), ...optional("lastEpoch", lastEpochOf(progress)) }),
    ...optional("error", optStr(item, "error")),
  };
}

/**
 * The condition that the member item is still held at `epoch`: ACTIVE, with a lease not lapsed at
 * `now`. A lapsed lease cannot be renewed nor written under: a process that was paused past it may
 * have been replaced already, and must not carry on as if it still held the slot.
 */
export function holdsLease(epoch: number, now: number) {
  return {
    expression: "#epoch = :epoch AND #status = :active AND #lease >= :now",
    names: { "#epoch": "epoch", "#status": "status", "#lease": "leaseExpiresAt" } as Record<string, string>,
    values: { ":epoch": { N: String(epoch) }, ":active": { S: "ACTIVE" }, ":now": { N: String(now) } } as Item,
  };
}

/**
 * The error for a write refused by the member item `current`. With `now`, a lease that is still
 * this writer's but lapsed is told apart from a slot taken over by another registration.
 */
export function fenced(writer: MemberWriter, current: Item | undefined, now?: number): FencedError {
  const m = current && toMember(current);
  const lapsed = m && now !== undefined && m.epoch === writer.epoch && m.status === "ACTIVE" && m.leaseExpiresAt < now ? m.leaseExpiresAt : undefined;
  return new FencedError(writer.jobId, writer.role, writer.index, writer.epoch, m?.epoch, m?.status, lapsed);
}

export async function register(items: Items, input: RegisterInput): Promise<Lease> {
  const now = items.now();
  const k = keys.member(input.jobId, input.role, input.index);
  const leaseExpiresAt = now + checkCount("leaseMs", input.leaseMs, 1);
  const r = await items.update(k, {
    update:
      "SET #role = :role, #index = :index, #address = :address, #epoch = if_not_exists(#epoch, :zero) + :one, " +
      "#lease = :lease, #hb = :now, #status = :active, #pid = :pid, #expiresAt = :exp REMOVE #progress, #error",
    // The same process again (`address` and `pid` match) is allowed, so an SDK retry of a
    // registration that already succeeded is not refused.
    condition: "attribute_not_exists(sk) OR #lease < :now OR #status <> :active OR (#address = :address AND #pid = :pid)",
    names: {
      "#role": "role",
      "#index": "index",
      "#address": "address",
      "#epoch": "epoch",
      "#lease": "leaseExpiresAt",
      "#hb": "heartbeatAt",
      "#status": "status",
      "#pid": "pid",
      "#expiresAt": "expiresAt",
      "#progress": "progress",
      "#error": "error",
    },
    values: {
      ":role": { S: input.role },
      ":index": { N: String(input.index) },
      ":address": { S: checkName("address", input.address) },
      ":zero": { N: "0" },
      ":one": { N: "1" },
      ":lease": { N: String(leaseExpiresAt) },
      ":now": { N: String(now) },
      ":active": { S: "ACTIVE" },
      ":pid": { N: String(checkCount("pid", input.pid)) },
      ":exp": items.expiresAt(now),
    },
    returnNew: true,
  });
  if (!r.ok) {
    // The condition can only fail on an existing item; if it vanished since, the next attempt will succeed.
    const holder = r.current ? toMember(r.current) : undefined;
    throw new MemberConflictError(input.jobId, input.role, input.index, holder?.epoch ?? 0, holder?.address ?? "unknown", holder?.leaseExpiresAt ?? now);
  }
  return { epoch: num(r.item, "epoch"), leaseExpiresAt };
}

export async function heartbeat(items: Items, input: HeartbeatInput): Promise<{ readonly leaseExpiresAt: number }> {
  const now = items.now();
  const k = keys.member(input.jobId, input.role, input.index);
  const leaseExpiresAt = now + checkCount("leaseMs", input.leaseMs, 1);
  const held = holdsLease(input.epoch, now);
  const sets = ["#lease = :lease", "#hb = :now", "#expiresAt = :exp"];
  const names = { ...held.names, "#hb": "heartbeatAt", "#expiresAt": "expiresAt" };
  const values: Item = { ...held.values, ":lease": { N: String(leaseExpiresAt) }, ":exp": items.expiresAt(now) };
  const progress = input.progress && { M: { step: { N: String(input.progress.step) }, rowsConsumed: { N: String(input.progress.rowsConsumed) } } };
  setDefined(sets, names, values, { progress });
  const r = await items.update(k, { update: `SET ${sets.join(", ")}`, condition: held.expression, names, values });
  if (!r.ok) throw fenced(input, r.current, now);
  return { leaseExpiresAt };
}

export async function markMember(items: Items, input: MarkMemberInput): Promise<void> {
  const now = items.now();
  const k = keys.member(input.jobId, input.role, input.index);
  if (input.status !== "DONE" && input.status !== "FAILED") throw new ConfigError("status", input.status, "DONE or FAILED");
  const sets = ["#status = :status", "#hb = :now"];
  const names: Record<string, string> = { "#epoch": "epoch", "#status": "status", "#hb": "heartbeatAt" };
  const values: Item = { ":epoch": { N: String(input.epoch) }, ":active": { S: "ACTIVE" }, ":status": { S: input.status }, ":now": { N: String(now) } };
  setDefined(sets, names, values, { error: optS(input.error) });
  // Repeating the status the member already has is accepted: a retried mark whose response was lost.
  const r = await items.update(k, { update: `SET ${sets.join(", ")}`, condition: "#epoch = :epoch AND (#status = :active OR #status = :status)", names, values });
  if (!r.ok) throw fenced(input, r.current);
}

export async function members(items: Items, jobId: string): Promise<MemberRecord[]> {
  // A registration creates its item with one UpdateItem, atomic in DynamoDB; moto applies the SET
  // clauses one by one, so a concurrent read there can see a key without its attributes. Such a
  // read is repeated briefly; an item still incomplete after that is reported as a real error.
  for (let attempt = 0; ; attempt++) {
    const found = await items.queryAll(jobId, PREFIX.member);
    if (attempt >= 19 || found.every((i) => i.role !== undefined && i.status !== undefined)) {
      return found.map(toMember).sort((a, b) => a.role.localeCompare(b.role) || a.index - b.index);
    }
    await sleep(10);
  }
}
