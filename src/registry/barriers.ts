/**
 * The barrier items (`barrier#<name>`): the moment a member set is complete, frozen with the
 * cluster spec and the epochs it released. The item is only ever created, with
 * `attribute_not_exists(sk)`, so exactly one of the racing callers wins the put and the others
 * read the winner's item: every member sees the same cluster spec.
 */
import { memberKey, ROLES } from "../protocol/names.ts";
import { BarrierTimeoutError, RegistryItemError } from "./errors.ts";
import { PREFIX, checkCount, json, jobIdOf, keys, num, skSuffix, sleep, where, type Item, type Items } from "./items.ts";
import type { BarrierRecord, ClusterSpec, MemberRecord } from "./types.ts";

export interface BarrierInput {
  readonly jobId: string;
  readonly name: string;
  /** How many members of each role must be ACTIVE with a live lease: slots 0..n-1. */
  readonly expected: { readonly worker: number; readonly ps: number; readonly chief?: number };
}

export interface AwaitBarrierInput extends BarrierInput {
  readonly timeoutMs: number;
  readonly pollMs?: number;
}

/** The outcome of one {@link Registry.releaseBarrier} attempt. */
export type BarrierAttempt =
  | { readonly kind: "released"; readonly barrier: BarrierRecord; /** true for the one caller whose put created the item */ readonly won: boolean }
  | { readonly kind: "waiting"; /** e.g. `worker-1 (not registered)` */ readonly missing: readonly string[] };

function toBarrier(item: Item): BarrierRecord {
  return {
    jobId: jobIdOf(item),
    name: skSuffix(item, PREFIX.barrier),
    releasedAt: num(item, "releasedAt"),
    clusterSpec: json<ClusterSpec>(item, "clusterSpec"),
    epochs: json<Record<string, number>>(item, "epochs"),
  };
}

export async function getBarrier(items: Items, jobId: string, name: string): Promise<BarrierRecord | undefined> {
  const item = await items.get(keys.barrier(jobId, name));
  return item && toBarrier(item);
}

/** `members` reads the job's member items; the facade passes its own method so a subclass sees the call. */
export async function releaseBarrier(items: Items, input: BarrierInput, members: (jobId: string) => Promise<MemberRecord[]>): Promise<BarrierAttempt> {
  const k = keys.barrier(input.jobId, input.name);
  const existing = await items.get(k);
  if (existing) return { kind: "released", barrier: toBarrier(existing), won: false };

  const now = items.now();
  const bySlot = new Map((await members(input.jobId)).map((m) => [memberKey(m.role, m.index), m]));
  const missing: string[] = [];
  const clusterSpec: { worker: string[]; ps: string[]; chief?: string[] } = { worker: [], ps: [], ...(input.expected.chief ? { chief: [] } : {}) };
  const epochs: Record<string, number> = {};
  for (const role of ROLES) {
    for (let index = 0; index < checkCount(`expected.${role}`, input.expected[role] ?? 0); index++) {
      const name = memberKey(role, index);
      const m = bySlot.get(name);
      if (!m) missing.push(`${name} (not registered)`);
      else if (m.status !== "ACTIVE") missing.push(`${name} (${m.status})`);
      else if (m.leaseExpiresAt < now) missing.push(`${name} (lease expired at ${new Date(m.leaseExpiresAt).toISOString()})`);
      else {
        clusterSpec[role]!.push(m.address);
        epochs[name] = m.epoch;
      }
    }
  }
  if (missing.length) return { kind: "waiting", missing };

  const item: Item = {
    ...k,
    releasedAt: { N: String(now) },
    clusterSpec: { S: JSON.stringify(clusterSpec) },
    epochs: { S: JSON.stringify(epochs) },
    expiresAt: items.expiresAt(now),
  };
  const r = await items.put(item, { expression: "attribute_not_exists(sk)" });
  if (r.ok) return { kind: "released", barrier: toBarrier(item), won: true };
  if (!r.current) throw new RegistryItemError(where(k), "sk", "the barrier item that refused the put", undefined);
  return { kind: "released", barrier: toBarrier(r.current), won: false };
}

/**
 * Polls `release` until the barrier is released. The deadline is measured with the real clock,
 * not the injected one, so a frozen test clock cannot hang it.
 */
export async function awaitBarrier(input: AwaitBarrierInput, release: (input: BarrierInput) => Promise<BarrierAttempt>): Promise<ClusterSpec> {
  const deadline = performance.now() + checkCount("timeoutMs", input.timeoutMs);
  const pollMs = checkCount("pollMs", input.pollMs ?? 250, 1);
  for (;;) {
    const attempt = await release(input);
    if (attempt.kind === "released") return attempt.barrier.clusterSpec;
    if (performance.now() >= deadline) throw new BarrierTimeoutError(input.jobId, input.name, attempt.missing, input.timeoutMs);
    await sleep(Math.min(pollMs, Math.max(1, deadline - performance.now())));
  }
}
