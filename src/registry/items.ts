/**
 * The item layer of the registry table: the key layout, reading attributes back, and the few
 * generic calls every record kind is built from (get, paged query, conditional put and update,
 * a put guarded by another item, batch delete). Beyond where each kind's item lives, nothing here
 * knows a record's attributes or rules.
 *
 * The rule it keeps for every kind: each write is conditional, and a refused condition resolves to
 * the item that refused it, so the kind's module can build its typed error from what the table holds.
 */
import {
  BatchWriteItemCommand,
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteItemsCommand,
  TransactionCanceledException,
  UpdateItemCommand,
  type AttributeValue,
  type WriteRequest,
} from "@aws-sdk/client-dynamodb";
import type { AwsClients } from "../aws/clients.ts";
import { ConfigError } from "../errors.ts";
import { JOB_ID_PATTERN, ROLES, type Role } from "../protocol/names.ts";
import { RegistryItemError } from "./errors.ts";

export type Item = Record<string, AttributeValue>;

/** How long items stay after their last write before DynamoDB TTL may delete them: 7 days. */
export const DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600;

const CHECKPOINT_STEP_DIGITS = 12;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// Checking what goes into keys and attributes: a bad value fails before any request.
function checkJobId(jobId: string): string {
  if (!JOB_ID_PATTERN.test(jobId)) throw new ConfigError("jobId", jobId, `a job id matching ${JOB_ID_PATTERN.source}`);
  return jobId;
}

export function checkCount(name: string, value: number, min = 0): number {
  if (!Number.isSafeInteger(value) || value < min) throw new ConfigError(name, value, `an integer >= ${min}`);
  return value;
}

function checkRole(role: string): Role {
  if (!(ROLES as readonly string[]).includes(role)) throw new ConfigError("role", role, `one of ${ROLES.join(", ")}`);
  return role as Role;
}

export function checkName(name: string, value: string): string {
  if (!value || value.includes("#")) throw new ConfigError(name, value, "a non-empty string without '#'");
  return value;
}

// The key layout (docs/protocol.md, "Registry items"): one partition per job, one sort key per record.
const pkOf = (jobId: string) => `job#${checkJobId(jobId)}`;
const key = (jobId: string, sk: string): Item => ({ pk: { S: pkOf(jobId) }, sk: { S: sk } });

/** The sort key prefix of each record kind that a job holds many of. */
export const PREFIX = { member: "member#", barrier: "barrier#", shard: "shard#", checkpoint: "checkpoint#" } as const;

export const keys = {
  job: (jobId: string) => key(jobId, "job"),
  member: (jobId: string, role: Role, index: number) => key(jobId, `${PREFIX.member}${checkRole(role)}#${checkCount("index", index)}`),
  barrier: (jobId: string, name: string) => key(jobId, `${PREFIX.barrier}${checkName("name", name)}`),
  shard: (jobId: string, shardId: string) => key(jobId, `${PREFIX.shard}${checkName("shardId", shardId)}`),
  // Zero-padded so that sort key order is step order: the latest checkpoint is the last item.
  checkpoint: (jobId: string, step: number) => key(jobId, `${PREFIX.checkpoint}${String(checkCount("step", step)).padStart(CHECKPOINT_STEP_DIGITS, "0")}`),
};

// Reading attributes back, strictly: a malformed item fails with its key and attribute.
export const where = (item: Item) => `${item.pk?.S}/${item.sk?.S}`;
export function str(item: Item, name: string): string {
  const v = item[name]?.S;
  if (v === undefined) throw new RegistryItemError(where(item), name, "a string (S)", item[name]);
  return v;
}
export function optStr(item: Item, name: string): string | undefined {
  return item[name] === undefined ? undefined : str(item, name);
}
export function num(item: Item, name: string): number {
  const v = Number(item[name]?.N);
  if (item[name]?.N === undefined || !Number.isFinite(v)) throw new RegistryItemError(where(item), name, "a number (N)", item[name]);
  return v;
}
export function bool(item: Item, name: string): boolean {
  const v = item[name]?.BOOL;
  if (v === undefined) throw new RegistryItemError(where(item), name, "a boolean (BOOL)", item[name]);
  return v;
}
export function oneOf<T extends string>(item: Item, name: string, allowed: readonly T[]): T {
  const v = str(item, name);
  if (!(allowed as readonly string[]).includes(v)) throw new RegistryItemError(where(item), name, `one of ${allowed.join(", ")}`, v);
  return v as T;
}
export function json<T>(item: Item, name: string): T {
  const text = str(item, name);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new RegistryItemError(where(item), name, "a JSON string", text);
  }
}
export const jobIdOf = (item: Item) => str(item, "pk").slice("job#".length);
/** The part of the sort key after the kind's prefix: a barrier's name, a shard's id. */
export const skSuffix = (item: Item, prefix: string) => str(item, "sk").slice(prefix.length);
export const optional = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } => (v === undefined ? {} : ({ [k]: v } as { [P in K]?: V }));

/** A condition expression with the placeholders it uses. */
export interface Condition {
  readonly expression: string;
  readonly names?: Record<string, string>;
  readonly values?: Item;
}

/** An update: its `SET`/`REMOVE` clauses and condition, with the placeholders both use. */
export interface Update {
  readonly update: string;
  readonly condition: string;
  readonly names: Record<string, string>;
  readonly values: Item;
  /** Return the item as written (`ALL_NEW`), for updates that compute attributes in the table. */
  readonly returnNew?: boolean;
}

/**
 * Adds `#attr = :attr` to `sets` for each attribute whose value is defined: the optional
 * attributes of an update, left untouched in the item when the caller does not pass them.
 */
export function setDefined(sets: string[], names: Record<string, string>, values: Item, attrs: Readonly<Record<string, AttributeValue | undefined>>): void {
  for (const [attr, value] of Object.entries(attrs)) {
    if (value === undefined) continue;
    sets.push(`#${attr} = :${attr}`);
    names[`#${attr}`] = attr;
    values[`:${attr}`] = value;
  }
}

/** A string attribute, or undefined for {@link setDefined} to leave out. */
export const optS = (value: string | undefined): AttributeValue | undefined => (value === undefined ? undefined : { S: value });

/** A conditional write's outcome: the written item, or the item that refused the condition (undefined when there is none). */
export type Written = { readonly ok: true; readonly item: Item } | { readonly ok: false; readonly current: Item | undefined };

/** The items of one table, read and written with the registry's clock. Holds no state besides the client. */
export class Items {
  constructor(
    private readonly clients: AwsClients,
    readonly tableName: string,
    /** Epoch milliseconds. Injectable so lease expiry is testable without sleeping. */
    readonly now: () => number,
  ) {}

  private get ddb() {
    return this.clients.dynamodb;
  }

  /** The TTL attribute (epoch seconds) of an item written at `now`. */
  expiresAt(now: number, retentionSeconds = DEFAULT_RETENTION_SECONDS): AttributeValue {
    return { N: String(Math.floor(now / 1000) + retentionSeconds) };
  }

  async get(k: Item): Promise<Item | undefined> {
    return (await this.ddb.send(new GetItemCommand({ TableName: this.tableName, Key: k, ConsistentRead: true }))).Item;
  }

  /**
   * Every item whose sort key is `sk`, across jobs, over all pages: a Scan, so for listings a
   * person asks for (the CLI's `jobs`), never on a job's own path.
   */
  async scanSortKey(sk: string): Promise<Item[]> {
    const items: Item[] = [];
    let start: Item | undefined;
    do {
      const page = await this.ddb.send(
        new ScanCommand({ TableName: this.tableName, FilterExpression: "sk = :sk", ExpressionAttributeValues: { ":sk": { S: sk } }, ...(start ? { ExclusiveStartKey: start } : {}) }),
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /** Every item of the job whose sort key starts with `prefix`, over all pages; with `projectKeys`, their keys only. */
  async queryAll(jobId: string, prefix: string, projectKeys = false): Promise<Item[]> {
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

  /** The item of the job with the highest sort key starting with `prefix`, or undefined. */
  async last(jobId: string, prefix: string): Promise<Item | undefined> {
    const page = await this.ddb.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues: { ":pk": { S: pkOf(jobId) }, ":prefix": { S: prefix } },
        ScanIndexForward: false,
        Limit: 1,
        ConsistentRead: true,
      }),
    );
    return page.Items?.[0];
  }

  /** Puts `item` if `condition` holds on the item it replaces. */
  async put(item: Item, condition: Condition): Promise<Written> {
    return this.conditional({ pk: item.pk!, sk: item.sk! }, async () => {
      await this.ddb.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: condition.expression,
          ExpressionAttributeNames: condition.names,
          ExpressionAttributeValues: condition.values,
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return item;
    });
  }

  /** Updates the item at `k` if the update's condition holds. `item` is the item as written with `returnNew`, else `{}`. */
  async update(k: Item, u: Update): Promise<Written> {
    return this.conditional(k, async () => {
      const r = await this.ddb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: k,
          UpdateExpression: u.update,
          ConditionExpression: u.condition,
          ExpressionAttributeNames: u.names,
          ExpressionAttributeValues: u.values,
          ...(u.returnNew ? { ReturnValues: "ALL_NEW" as const } : {}),
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return r.Attributes ?? {};
    });
  }

  /**
   * Puts `item` in one transaction with `condition` on the item at `guard`, so the put happens only
   * while the guard holds. False when the guard's condition refused it.
   */
  async putGuarded(item: Item, guard: Item, condition: Condition): Promise<boolean> {
    try {
      await this.ddb.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            {
              ConditionCheck: {
                TableName: this.tableName,
                Key: guard,
                ConditionExpression: condition.expression,
                ExpressionAttributeNames: condition.names,
                ExpressionAttributeValues: condition.values,
              },
            },
            { Put: { TableName: this.tableName, Item: item } },
          ],
        }),
      );
      return true;
    } catch (e) {
      if (!(e instanceof TransactionCanceledException) || e.CancellationReasons?.[0]?.Code !== "ConditionalCheckFailed") throw e;
      return false;
    }
  }

  /**
   * Deletes the items at `itemKeys`, 25 a batch, retrying what DynamoDB leaves unprocessed (throttling)
   * with backoff; after 9 tries of one batch throws what `giveUp` makes of the items still left.
   */
  async deleteAll(itemKeys: readonly Item[], giveUp: (left: number, attempts: number) => Error): Promise<void> {
    for (let i = 0; i < itemKeys.length; i += 25) {
      let requests: WriteRequest[] = itemKeys.slice(i, i + 25).map((k) => ({ DeleteRequest: { Key: { pk: k.pk!, sk: k.sk! } } }));
      for (let attempt = 0; requests.length; attempt++) {
        if (attempt > 0) await sleep(Math.min(1000, 50 * 2 ** attempt));
        if (attempt > 8) throw giveUp(requests.length, attempt);
        const r = await this.ddb.send(new BatchWriteItemCommand({ RequestItems: { [this.tableName]: requests } }));
        requests = r.UnprocessedItems?.[this.tableName] ?? [];
      }
    }
  }

  /**
   * Runs a conditional write. When the condition fails, resolves to the item that refused it:
   * from `ReturnValuesOnConditionCheckFailure: ALL_OLD` (moto supports it), else from a consistent read.
   */
  private async conditional(k: Item, write: () => Promise<Item>): Promise<Written> {
    try {
      return { ok: true, item: await write() };
    } catch (e) {
      if (!(e instanceof ConditionalCheckFailedException)) throw e;
      return { ok: false, current: e.Item ?? (await this.get(k)) };
    }
  }
}
