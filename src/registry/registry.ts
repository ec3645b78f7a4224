/**
 * The registry client: job state, member leases, barriers, shard progress and checkpoints in one
 * DynamoDB table (docs/protocol.md, "Registry items"). It replaces ZooKeeper: every write is
 * conditional, and a refused condition becomes a typed error built from the item that refused it.
 *
 * Leases are judged by comparing `leaseExpiresAt` with the injected clock, never by TTL: DynamoDB
 * deletes expired items only eventually and moto never does.
 */
import {
  BatchWriteItemCommand,
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  TransactionCanceledException,
  UpdateItemCommand,
  type AttributeValue,
  type WriteRequest,
} from "@aws-sdk/client-dynamodb";
import type { AwsClients } from "../aws/clients.ts";
import { ConfigError, ServerlessTfError } from "../errors.ts";
import {
  BarrierTimeoutError,
  FencedError,
  JobConflictError,
  JobNotFoundError,
  JobStateError,
  MemberConflictError,
  RegistryItemError,
  ShardRewindError,
} from "./errors.ts";
import {
  JOB_MODES,
  JOB_STATES,
  MEMBER_ROLES,
  MEMBER_STATUSES,
  memberName,
  type BarrierRecord,
  type CheckpointInput,
  type CheckpointRecord,
  type ClusterSpec,
  type JobMode,
  type JobRecord,
  type JobSpecJson,
  type JobState,
  type MemberProgress,
  type MemberRecord,
  type MemberRole,
  type ShardProgress,
  type ShardRecord,
} from "./types.ts";

type Item = Record<string, AttributeValue>;

/** How long items stay after their last write before DynamoDB TTL may delete them: 7 days. */
export const DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600;

const JOB_ID = /^[a-z0-9][a-z0-9-]{2,39}$/;
const CHECKPOINT_STEP_DIGITS = 12;

export interface CreateJobInput {
  readonly jobId: string;
  readonly mode: JobMode;
  readonly spec: JobSpecJson;
  /** TTL of the job item; default {@link DEFAULT_RETENTION_SECONDS}. */
  readonly retentionSeconds?: number;
}

export interface RegisterInput {
  readonly jobId: string;
  readonly role: MemberRole;
  readonly index: number;
  /** `host:port` other members reach this one at. */
  readonly address: string;
  readonly pid: number;
  readonly leaseMs: number;
}

export interface Lease {
  readonly epoch: number;
  readonly leaseExpiresAt: number;
}

export interface HeartbeatInput {
  readonly jobId: string;
  readonly role: MemberRole;
  readonly index: number;
  readonly epoch: number;
  readonly leaseMs: number;
  readonly progress?: MemberProgress;
}

export interface MarkMemberInput {
  readonly jobId: string;
  readonly role: MemberRole;
  readonly index: number;
  readonly epoch: number;
  readonly status: "DONE" | "FAILED";
  readonly error?: string;
}

export interface BarrierInput {
  readonly jobId: string;
  readonly name: string;
  /** How many members of each role must be ACTIVE with a live lease: slots 0..n-1. */
  readonly expected: { readonly worker: number; readonly ps: number };
}

export interface AwaitBarrierInput extends BarrierInput {
  readonly timeoutMs: number;
  readonly pollMs?: number;
}

/** The outcome of one {@link Registry.releaseBarrier} attempt. */
export type BarrierAttempt =
  | { readonly kind: "released"; readonly barrier: BarrierRecord; /** true for the one caller whose put created the item */ readonly won: boolean }
  | { readonly kind: "waiting"; /** e.g. `worker-1 (not registered)` */ readonly missing: readonly string[] };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function checkJobId(jobId: string): string {
  if (!JOB_ID.test(jobId)) throw new ConfigError("jobId", jobId, `a job id matching ${JOB_ID.source}`);
  return jobId;
}

function checkCount(name: string, value: number, min = 0): number {
  if (!Number.isSafeInteger(value) || value < min) throw new ConfigError(name, value, `an integer >= ${min}`);
  return value;
}

function checkRole(role: string): MemberRole {
  if (!(MEMBER_ROLES as readonly string[]).includes(role)) throw new ConfigError("role", role, `one of ${MEMBER_ROLES.join(", ")}`);
  return role as MemberRole;
}

function checkName(name: string, value: string): string {
  if (!value || value.includes("#")) throw new ConfigError(name, value, "a non-empty string without '#'");
  return value;
}

const pkOf = (jobId: string) => `job#${checkJobId(jobId)}`;
const memberSk = (role: MemberRole, index: number) => `member#${checkRole(role)}#${checkCount("index", index)}`;
const checkpointSk = (step: number) => `checkpoint#${String(checkCount("step", step)).padStart(CHECKPOINT_STEP_DIGITS, "0")}`;
const key = (jobId: string, sk: string): Item => ({ pk: { S: pkOf(jobId) }, sk: { S: sk } });

// Reading attributes back, strictly: a malformed item fails with its key and attribute.
const where = (item: Item) => `${item.pk?.S}/${item.sk?.S}`;
function str(item: Item, name: string): string {
  const v = item[name]?.S;
  if (v === undefined) throw new RegistryItemError(where(item), name, "a string (S)", item[name]);
  return v;
}
function optStr(item: Item, name: string): string | undefined {
  return item[name] === undefined ? undefined : str(item, name);
}
function num(item: Item, name: string): number {
  const v = Number(item[name]?.N);
  if (item[name]?.N === undefined || !Number.isFinite(v)) throw new RegistryItemError(where(item), name, "a number (N)", item[name]);
  return v;
}
function bool(item: Item, name: string): boolean {
  const v = item[name]?.BOOL;
  if (v === undefined) throw new RegistryItemError(where(item), name, "a boolean (BOOL)", item[name]);
  return v;
}
function oneOf<T extends string>(item: Item, name: string, allowed: readonly T[]): T {
  const v = str(item, name);
  if (!(allowed as readonly string[]).includes(v)) throw new RegistryItemError(where(item), name, `one of ${allowed.join(", ")}`, v);
  return v as T;
}
function json<T>(item: Item, name: string): T {
  const text = str(item, name);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new RegistryItemError(where(item), name, "a JSON string", text);
  }
}
const jobIdOf = (item: Item) => str(item, "pk").slice("job#".length);
const optional = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } => (v === undefined ? {} : ({ [k]: v } as { [P in K]?: V }));

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

function toMember(item: Item): MemberRecord {
  const progress = item.progress?.M;
  return {
    jobId: jobIdOf(item),
    role: oneOf(item, "role", MEMBER_ROLES),
    index: num(item, "index"),
    address: str(item, "address"),
    epoch: num(item, "epoch"),
    leaseExpiresAt: num(item, "leaseExpiresAt"),
    heartbeatAt: num(item, "heartbeatAt"),
    status: oneOf(item, "status", MEMBER_STATUSES),
    pid: num(item, "pid"),
    ...optional("progress", progress && { step: num(progress, "step"), rowsConsumed: num(progress, "rowsConsumed") }),
    ...optional("error", optStr(item, "error")),
  };
}

function toBarrier(item: Item): BarrierRecord {
  return {
    jobId: jobIdOf(item),
    name: str(item, "sk").slice("barrier#".length),
    releasedAt: num(item, "releasedAt"),
    clusterSpec: json<ClusterSpec>(item, "clusterSpec"),
    epochs: json<Record<string, number>>(item, "epochs"),
  };
}

function toShard(item: Item): ShardRecord {
  return {
    jobId: jobIdOf(item),
    shardId: str(item, "sk").slice("shard#".length),
    cursor: num(item, "cursor"),
    seq: num(item, "seq"),
    done: bool(item, "done"),
    rowsPerMember: json<Record<string, number>>(item, "rowsPerMember"),
    messagesPerMember: json<Record<string, number>>(item, "messagesPerMember"),
  };
}

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

/**
 * The registry of one table. Construct one per process; it holds no state besides the client.
 *
 * @example
 * const registry = new Registry(createAwsClients(), registryTableName());
 * await registry.createJob({ jobId: "fit-3f9a2c1b", mode: "train", spec });
 * const { epoch } = await registry.register({ jobId: "fit-3f9a2c1b", role: "worker", index: 0, address: "10.0.0.5:2222", pid: process.pid, leaseMs: 10_000 });
 * const clusterSpec = await registry.awaitBarrier({ jobId: "fit-3f9a2c1b", name: "start", expected: { worker: 2, ps: 0 }, timeoutMs: 60_000 });
 */
export class Registry {
  constructor(
    private readonly clients: AwsClients,
    readonly tableName: string,
    /** Epoch milliseconds. Injectable so lease expiry is testable without sleeping. */
    private readonly now: () => number = Date.now,
  ) {}

  private get ddb() {
    return this.clients.dynamodb;
  }

  private expiresAt(now: number, retentionSeconds = DEFAULT_RETENTION_SECONDS): AttributeValue {
    return { N: String(Math.floor(now / 1000) + retentionSeconds) };
  }

  /**
   * Runs a conditional write. When the condition fails, resolves to the item that refused it:
   * from `ReturnValuesOnConditionCheckFailure: ALL_OLD` (moto supports it), else from a consistent read.
   */
  private async conditional<T>(k: Item, write: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; current: Item | undefined }> {
    try {
      return { ok: true, value: await write() };
    } catch (e) {
      if (!(e instanceof ConditionalCheckFailedException)) throw e;
      return { ok: false, current: e.Item ?? (await this.getItem(k)) };
    }
  }

  private async getItem(k: Item): Promise<Item | undefined> {
    return (await this.ddb.send(new GetItemCommand({ TableName: this.tableName, Key: k, ConsistentRead: true }))).Item;
  }

  private async queryAll(jobId: string, prefix: string, projectKeys = false): Promise<Item[]> {
    const items: Item[] = [];
    let start: Item | undefined;
    do {
      const page = await this.ddb.send(
        new QueryCommand({
          TableName: this.tableName,
          // DynamoDB refuses begins_with on an empty string: no prefix means every item of the job.
          KeyConditionExpression: prefix ? "pk = :pk AND begins_with(sk, :prefix)" : "pk = :pk",
          ExpressionAttributeValues: { ":pk": { S: pkOf(jobId) }, ...(prefix ? { ":prefix": { S: prefix } } : {}) },
          ConsistentRead: true,
          ExclusiveStartKey: start,
          ...(projectKeys ? { ProjectionExpression: "pk, sk" } : {}),
        }),
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /** Writes a new job in state CREATED, rev 1. Throws {@link JobConflictError} when the id is taken. */
  async createJob(input: CreateJobInput): Promise<JobRecord> {
    const now = this.now();
    const k = key(input.jobId, "job");
    if (!JOB_MODES.includes(input.mode)) throw new ConfigError("mode", input.mode, `one of ${JOB_MODES.join(", ")}`);
    const item: Item = {
      ...k,
      state: { S: "CREATED" },
      mode: { S: input.mode },
      spec: { S: JSON.stringify(input.spec) },
      rev: { N: "1" },
      createdAt: { N: String(now) },
      updatedAt: { N: String(now) },
      expiresAt: this.expiresAt(now, checkCount("retentionSeconds", input.retentionSeconds ?? DEFAULT_RETENTION_SECONDS, 1)),
    };
    const r = await this.conditional(k, () =>
      this.ddb.send(
        new PutItemCommand({ TableName: this.tableName, Item: item, ConditionExpression: "attribute_not_exists(sk)", ReturnValuesOnConditionCheckFailure: "ALL_OLD" }),
      ),
    );
    if (!r.ok) {
      // The same create again (an SDK retry after a response was lost) finds its own item: not a conflict.
      if (r.current?.spec?.S === item.spec!.S && r.current?.mode?.S === input.mode) return toJob(r.current);
      throw new JobConflictError(input.jobId, r.current?.state?.S as JobState | undefined);
    }
    return toJob(item);
  }

  /** The job, read consistently; undefined when it is not in the registry. */
  async getJob(jobId: string): Promise<JobRecord | undefined> {
    const item = await this.getItem(key(jobId, "job"));
    return item && toJob(item);
  }

  /**
   * Moves the job to `to` if its state is one of `from`, adding 1 to `rev`.
   * Throws {@link JobStateError} when the state is another one, {@link JobNotFoundError} when there is no job.
   *
   * @example
   * await registry.transitionJob(jobId, ["RUNNING"], "SUCCEEDED", { modelUri: "s3://b/models/m/versions/3/metadata.json" });
   */
  async transitionJob(jobId: string, from: readonly JobState[], to: JobState, patch: { readonly error?: string; readonly modelUri?: string } = {}): Promise<JobRecord> {
    if (from.length === 0) throw new ConfigError("from", from, "at least one job state");
    const k = key(jobId, "job");
    const values: Item = { ":to": { S: to }, ":one": { N: "1" }, ":now": { N: String(this.now()) } };
    from.forEach((s, i) => (values[`:from${i}`] = { S: s }));
    const sets = ["#state = :to", "#rev = #rev + :one", "#updatedAt = :now"];
    const names: Record<string, string> = { "#state": "state", "#rev": "rev", "#updatedAt": "updatedAt" };
    for (const [attr, value] of [["error", patch.error], ["modelUri", patch.modelUri]] as const) {
      if (value === undefined) continue;
      sets.push(`#${attr} = :${attr}`);
      names[`#${attr}`] = attr;
      values[`:${attr}`] = { S: value };
    }
    const r = await this.conditional(k, () =>
      this.ddb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: k,
          UpdateExpression: `SET ${sets.join(", ")}`,
          ConditionExpression: `attribute_exists(sk) AND #state IN (${from.map((_, i) => `:from${i}`).join(", ")})`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: "ALL_NEW",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      ),
    );
    if (!r.ok) {
      if (!r.current) throw new JobNotFoundError(jobId);
      // Already where this call moves it, with the same patch: a retried transition whose response was lost.
      const alreadyDone = r.current.state?.S === to && (patch.error === undefined || r.current.error?.S === patch.error) && (patch.modelUri === undefined || r.current.modelUri?.S === patch.modelUri);
      if (alreadyDone) return toJob(r.current);
      throw new JobStateError(jobId, from, oneOf(r.current, "state", JOB_STATES), to);
    }
    return toJob(r.value.Attributes ?? {});
  }

  /**
   * Claims round `round` of a job's watch for the message `token` (its SQS message id): the job
   * item's `watchRound` moves from `round` to `round + 1`. The same message again (a redelivery
   * after a failed round, or an SDK retry whose response was lost) is granted again; any other
   * message for that round (a duplicated send) is refused, so a job has one chain of rounds.
   * Returns false when refused; throws {@link JobNotFoundError} when the job is gone.
   */
  async claimWatchRound(jobId: string, round: number, token: string): Promise<boolean> {
    const k = key(jobId, "job");
    const values: Item = { ":next": { N: String(checkCount("round", round) + 1) }, ":token": { S: checkName("token", token) } };
    if (round > 0) values[":round"] = { N: String(round) };
    const r = await this.conditional(k, () =>
      this.ddb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: k,
          UpdateExpression: "SET #round = :next, #token = :token",
          ConditionExpression: `attribute_exists(sk) AND (${round === 0 ? "attribute_not_exists(#round)" : "#round = :round"} OR (#round = :next AND #token = :token))`,
          ExpressionAttributeNames: { "#round": "watchRound", "#token": "watchToken" },
          ExpressionAttributeValues: values,
        }),
      ),
    );
    if (r.ok) return true;
    if (!r.current) throw new JobNotFoundError(jobId);
    return false;
  }

  /**
   * Claims restart `attempt` of a job's member set: the job item's `watchAttempt` moves up to
   * `attempt`. False when it is already there (an earlier try of the same watch round restarted
   * the set): the caller must not fence the members that attempt registered.
   */
  async claimWatchAttempt(jobId: string, attempt: number): Promise<boolean> {
    const k = key(jobId, "job");
    const r = await this.conditional(k, () =>
      this.ddb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: k,
          UpdateExpression: "SET #attempt = :attempt",
          ConditionExpression: "attribute_exists(sk) AND (attribute_not_exists(#attempt) OR #attempt < :attempt)",
          ExpressionAttributeNames: { "#attempt": "watchAttempt" },
          ExpressionAttributeValues: { ":attempt": { N: String(checkCount("attempt", attempt, 1)) } },
        }),
      ),
    );
    if (r.ok) return true;
    if (!r.current) throw new JobNotFoundError(jobId);
    return false;
  }

  /**
   * Takes the slot `role-index` for `leaseMs`: allowed when the slot is empty, its lease has expired,
   * its member is no longer ACTIVE, or it is this same process (`address` and `pid` match, so an SDK retry
   * of a registration that already succeeded is not refused). The epoch becomes the previous one + 1.
   * Throws {@link MemberConflictError} when a live member holds the slot.
   */
  async register(input: RegisterInput): Promise<Lease> {
    const now = this.now();
    const k = key(input.jobId, memberSk(input.role, input.index));
    const leaseExpiresAt = now + checkCount("leaseMs", input.leaseMs, 1);
    const r = await this.conditional(k, () =>
      this.ddb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: k,
          UpdateExpression:
            "SET #role = :role, #index = :index, #address = :address, #epoch = if_not_exists(#epoch, :zero) + :one, " +
            "#lease = :lease, #hb = :now, #status = :active, #pid = :pid, #expiresAt = :exp REMOVE #progress, #error",
          ConditionExpression: "attribute_not_exists(sk) OR #lease < :now OR #status <> :active OR (#address = :address AND #pid = :pid)",
          ExpressionAttributeNames: {
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
          ExpressionAttributeValues: {
            ":role": { S: input.role },
            ":index": { N: String(input.index) },
            ":address": { S: checkName("address", input.address) },
            ":zero": { N: "0" },
            ":one": { N: "1" },
            ":lease": { N: String(leaseExpiresAt) },
            ":now": { N: String(now) },
            ":active": { S: "ACTIVE" },
            ":pid": { N: String(checkCount("pid", input.pid)) },
            ":exp": this.expiresAt(now),
          },
          ReturnValues: "ALL_NEW",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      ),
    );
    if (!r.ok) {
      // The condition can only fail on an existing item; if it vanished since, the next attempt will succeed.
      const holder = r.current ? toMember(r.current) : undefined;
      throw new MemberConflictError(input.jobId, input.role, input.index, holder?.epoch ?? 0, holder?.address ?? "unknown", holder?.leaseExpiresAt ?? now);
    }
    return { epoch: num(r.value.Attributes ?? {}, "epoch"), leaseExpiresAt };
  }

  private fenced(input: { jobId: string; role: MemberRole; index: number; epoch: number }, current: Item | undefined, now?: number): FencedError {
    const m = current && toMember(current);
    const lapsed = m && now !== undefined && m.epoch === input.epoch && m.status === "ACTIVE" && m.leaseExpiresAt < now ? m.leaseExpiresAt : undefined;
    return new FencedError(input.jobId, input.role, input.index, input.epoch, m?.epoch, m?.status, lapsed);
  }

  /** Extends the lease of the member holding `epoch`. Throws {@link FencedError} when the epoch moved on or the member is not ACTIVE. */
  async heartbeat(input: HeartbeatInput): Promise<{ readonly leaseExpiresAt: number }> {
    const now = this.now();
    const k = key(input.jobId, memberSk(input.role, input.index));
    const leaseExpiresAt = now + checkCount("leaseMs", input.leaseMs, 1);
    const names: Record<string, string> = { "#epoch": "epoch", "#status": "status", "#lease": "leaseExpiresAt", "#hb": "heartbeatAt", "#expiresAt": "expiresAt" };
    const values: Item = { ":epoch": { N: String(input.epoch) }, ":active": { S: "ACTIVE" }, ":lease": { N: String(leaseExpiresAt) }, ":now": { N: String(now) }, ":exp": this.expiresAt(now) };
    let update = "SET #lease = :lease, #hb = :now, #expiresAt = :exp";
    if (input.progress) {
      update += ", #progress = :progress";
      names["#progress"] = "progress";
      values[":progress"] = { M: { step: { N: String(input.progress.step) }, rowsConsumed: { N: String(input.progress.rowsConsumed) } } };
    }
    const r = await this.conditional(k, () =>
      this.ddb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: k,
          UpdateExpression: update,
          // A lapsed lease cannot be renewed: a process that was paused past it may have been
          // replaced already, and must not carry on as if it still held the slot.
          ConditionExpression: "#epoch = :epoch AND #status = :active AND #lease >= :now",
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      ),
    );
    if (!r.ok) throw this.fenced(input, r.current, now);
    return { leaseExpiresAt };
  }

  /**
   * Records that the member holding `epoch` finished (DONE) or failed (FAILED). Repeating the same
   * status is accepted; anything else after the member left ACTIVE, or with an old epoch, throws {@link FencedError}.
   */
  async markMember(input: MarkMemberInput): Promise<void> {
    const now = this.now();
    const k = key(input.jobId, memberSk(input.role, input.index));
    if (input.status !== "DONE" && input.status !== "FAILED") throw new ConfigError("status", input.status, "DONE or FAILED");
    const names: Record<string, string> = { "#epoch": "epoch", "#status": "status", "#hb": "heartbeatAt" };
    const values: Item = { ":epoch": { N: String(input.epoch) }, ":active": { S: "ACTIVE" }, ":status": { S: input.status }, ":now": { N: String(now) } };
    let update = "SET #status = :status, #hb = :now";
    if (input.error !== undefined) {
      update += ", #error = :error";
      names["#error"] = "error";
      values[":error"] = { S: input.error };
    }
    const r = await this.conditional(k, () =>
      this.ddb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: k,
          UpdateExpression: update,
          ConditionExpression: "#epoch = :epoch AND (#status = :active OR #status = :status)",
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      ),
    );
    if (!r.ok) throw this.fenced(input, r.current);
  }

  /** Every member item of the job, ordered by role then index. */
  async members(jobId: string): Promise<MemberRecord[]> {
    // A registration creates its item with one UpdateItem, atomic in DynamoDB; moto applies the SET
    // clauses one by one, so a concurrent read there can see a key without its attributes. Such a
    // read is repeated briefly; an item still incomplete after that is reported as a real error.
    for (let attempt = 0; ; attempt++) {
      const items = await this.queryAll(jobId, "member#");
      if (attempt >= 19 || items.every((i) => i.role !== undefined && i.status !== undefined)) {
        return items.map(toMember).sort((a, b) => a.role.localeCompare(b.role) || a.index - b.index);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** The released barrier, or undefined while it is not released. */
  async getBarrier(jobId: string, name: string): Promise<BarrierRecord | undefined> {
    const item = await this.getItem(key(jobId, `barrier#${checkName("name", name)}`));
    return item && toBarrier(item);
  }

  /**
   * One attempt to release the barrier: when every expected slot holds an ACTIVE member with a live
   * lease, puts `barrier#<name>` with `attribute_not_exists(sk)`. Exactly one racing caller wins the put;
   * the others read the winner's item, so all see the same cluster spec.
   */
  async releaseBarrier(input: BarrierInput): Promise<BarrierAttempt> {
    const k = key(input.jobId, `barrier#${checkName("name", input.name)}`);
    const existing = await this.getItem(k);
    if (existing) return { kind: "released", barrier: toBarrier(existing), won: false };

    const now = this.now();
    const bySlot = new Map((await this.members(input.jobId)).map((m) => [memberName(m.role, m.index), m]));
    const missing: string[] = [];
    const clusterSpec: { worker: string[]; ps: string[] } = { worker: [], ps: [] };
    const epochs: Record<string, number> = {};
    for (const role of MEMBER_ROLES) {
      for (let index = 0; index < checkCount(`expected.${role}`, input.expected[role]); index++) {
        const name = memberName(role, index);
        const m = bySlot.get(name);
        if (!m) missing.push(`${name} (not registered)`);
        else if (m.status !== "ACTIVE") missing.push(`${name} (${m.status})`);
        else if (m.leaseExpiresAt < now) missing.push(`${name} (lease expired at ${new Date(m.leaseExpiresAt).toISOString()})`);
        else {
          clusterSpec[role].push(m.address);
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
      expiresAt: this.expiresAt(now),
    };
    const r = await this.conditional(k, () =>
      this.ddb.send(new PutItemCommand({ TableName: this.tableName, Item: item, ConditionExpression: "attribute_not_exists(sk)", ReturnValuesOnConditionCheckFailure: "ALL_OLD" })),
    );
    if (r.ok) return { kind: "released", barrier: toBarrier(item), won: true };
    if (!r.current) throw new RegistryItemError(where(k), "sk", "the barrier item that refused the put", undefined);
    return { kind: "released", barrier: toBarrier(r.current), won: false };
  }

  /**
   * Waits until the barrier is released (by this caller or another) and returns its cluster spec.
   * Throws {@link BarrierTimeoutError} naming the missing members after `timeoutMs` of wall time
   * (measured with the real clock, not the injected one, so a frozen test clock cannot hang it).
   */
  async awaitBarrier(input: AwaitBarrierInput): Promise<ClusterSpec> {
    const deadline = performance.now() + checkCount("timeoutMs", input.timeoutMs);
    const pollMs = checkCount("pollMs", input.pollMs ?? 250, 1);
    for (;;) {
      const attempt = await this.releaseBarrier(input);
      if (attempt.kind === "released") return attempt.barrier.clusterSpec;
      if (performance.now() >= deadline) throw new BarrierTimeoutError(input.jobId, input.name, attempt.missing, input.timeoutMs);
      await sleep(Math.min(pollMs, Math.max(1, deadline - performance.now())));
    }
  }

  /**
   * Records how far a shard feed got. Refused with {@link ShardRewindError} when it would move the
   * cursor or sequence backwards or reopen a done shard, so a retried continuation cannot rewind.
   * Writing the same progress again is accepted.
   */
  async recordShardProgress(jobId: string, shardId: string, progress: ShardProgress): Promise<ShardRecord> {
    const k = key(jobId, `shard#${checkName("shardId", shardId)}`);
    const item: Item = {
      ...k,
      cursor: { N: String(checkCount("cursor", progress.cursor)) },
      seq: { N: String(checkCount("seq", progress.seq)) },
      done: { BOOL: progress.done },
      rowsPerMember: { S: JSON.stringify(progress.rowsPerMember) },
      messagesPerMember: { S: JSON.stringify(progress.messagesPerMember) },
      expiresAt: this.expiresAt(this.now()),
    };
    const r = await this.conditional(k, () =>
      this.ddb.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: `attribute_not_exists(sk) OR (#cursor <= :cursor AND #seq <= :seq${progress.done ? "" : " AND #done = :false"})`,
          ExpressionAttributeNames: { "#cursor": "cursor", "#seq": "seq", ...(progress.done ? {} : { "#done": "done" }) },
          ExpressionAttributeValues: { ":cursor": item.cursor!, ":seq": item.seq!, ...(progress.done ? {} : { ":false": { BOOL: false } }) },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      ),
    );
    if (!r.ok) {
      const current = r.current ? toShard(r.current) : { cursor: 0, seq: 0, done: false };
      throw new ShardRewindError(jobId, shardId, progress, { cursor: current.cursor, seq: current.seq, done: current.done });
    }
    return toShard(item);
  }

  async getShard(jobId: string, shardId: string): Promise<ShardRecord | undefined> {
    const item = await this.getItem(key(jobId, `shard#${checkName("shardId", shardId)}`));
    return item && toShard(item);
  }

  /** Every shard of the job, ordered by shard id. */
  async shards(jobId: string): Promise<ShardRecord[]> {
    return (await this.queryAll(jobId, "shard#")).map(toShard);
  }

  /**
   * Publishes a checkpoint whose files are all uploaded under `uri`, as `checkpoint#<step, 12
   * digits>`, in one transaction with a check that the writer still holds its lease (epoch,
   * ACTIVE, not lapsed): a fenced worker cannot publish over its replacement. The same step again
   * replaces it. Throws {@link FencedError} when the writer lost its lease.
   */
  async recordCheckpoint(jobId: string, checkpoint: CheckpointInput): Promise<CheckpointRecord> {
    const now = this.now();
    const { role, index, epoch } = checkpoint.writer;
    const item: Item = {
      ...key(jobId, checkpointSk(checkpoint.step)),
      step: { N: String(checkpoint.step) },
      uri: { S: checkName("uri", checkpoint.uri) },
      feedPosition: { N: String(checkCount("feedPosition", checkpoint.feedPosition)) },
      member: { S: memberName(role, index) },
      createdAt: { N: String(now) },
      expiresAt: this.expiresAt(now),
    };
    const memberKey = key(jobId, memberSk(role, index));
    try {
      await this.ddb.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            {
              ConditionCheck: {
                TableName: this.tableName,
                Key: memberKey,
                ConditionExpression: "#epoch = :epoch AND #status = :active AND #lease >= :now",
                ExpressionAttributeNames: { "#epoch": "epoch", "#status": "status", "#lease": "leaseExpiresAt" },
                ExpressionAttributeValues: { ":epoch": { N: String(epoch) }, ":active": { S: "ACTIVE" }, ":now": { N: String(now) } },
              },
            },
            { Put: { TableName: this.tableName, Item: item } },
          ],
        }),
      );
    } catch (e) {
      if (!(e instanceof TransactionCanceledException) || e.CancellationReasons?.[0]?.Code !== "ConditionalCheckFailed") throw e;
      throw this.fenced({ jobId, role, index, epoch }, await this.getItem(memberKey), now);
    }
    return toCheckpoint(item);
  }

  /** The checkpoint with the highest step, or undefined when there is none. */
  async latestCheckpoint(jobId: string): Promise<CheckpointRecord | undefined> {
    const page = await this.ddb.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues: { ":pk": { S: pkOf(jobId) }, ":prefix": { S: "checkpoint#" } },
        ScanIndexForward: false,
        Limit: 1,
        ConsistentRead: true,
      }),
    );
    const item = page.Items?.[0];
    return item && toCheckpoint(item);
  }

  /** Deletes every item of the job (job, members, barriers, shards, checkpoints). Returns how many. */
  async deleteJob(jobId: string): Promise<number> {
    const keys = await this.queryAll(jobId, "", true);
    for (let i = 0; i < keys.length; i += 25) {
      let requests: WriteRequest[] = keys.slice(i, i + 25).map((k) => ({ DeleteRequest: { Key: { pk: k.pk!, sk: k.sk! } } }));
      for (let attempt = 0; requests.length; attempt++) {
        if (attempt > 0) await sleep(Math.min(1000, 50 * 2 ** attempt));
        if (attempt > 8) throw new ServerlessTfError(`deleting job ${jobId}: ${requests.length} items were still unprocessed after ${attempt} attempts (throttled). Call deleteJob again later.`);
        const r = await this.ddb.send(new BatchWriteItemCommand({ RequestItems: { [this.tableName]: requests } }));
        requests = r.UnprocessedItems?.[this.tableName] ?? [];
      }
    }
    return keys.length;
  }
}
