/**
 * The inference function's idempotency record: one registry item per (model, row id), so a row
 * delivered twice (SQS is at-least-once; a short visibility timeout, a slow batch or a lost
 * delete brings a message back while or after it was served) is run and answered once.
 *
 * Item: `pk = "served#<modelId>"`, `sk = "row#<row id>"`, `status` `PENDING` | `DONE`, `owner`
 * (a token per handling), `lockedUntil` (epoch ms), `expiresAt` (epoch seconds, TTL only).
 *
 * A handler claims a row with a conditional put (absent, or PENDING with its lock lapsed, so a
 * handler that died does not hold the row forever), runs the model, sends the result, then marks
 * the row DONE. A claim whose response was lost comes back from the SDK's retry as a failed
 * condition; reading the item back and finding our own `owner` tells it apart from a real
 * conflict (the powertools idempotency pattern, with the owner token added for lost responses).
 */
import { BatchWriteItemCommand, ConditionalCheckFailedException, DeleteItemCommand, GetItemCommand, PutItemCommand, UpdateItemCommand, type AttributeValue, type Put } from "@aws-sdk/client-dynamodb";
import type { AwsClients } from "../../src/aws/clients.ts";
import { FUNCTIONS } from "../../src/resources/definitions.ts";

/** What a claim found: the row is ours to serve, was served already, or is being served by another handler. */
export type ClaimOutcome = "claimed" | "done" | "busy";

/** How long an idempotency record is kept (TTL), in seconds: longer than any redelivery (SQS keeps a message 14 days at most). */
const KEEP_SECONDS = 15 * 24 * 3600;

/**
 * A claim outlasts the longest invocation that can hold it (the function's timeout) by the clock
 * skew budget between two hosts' `Date.now()` (30 s): a handler still running is never overtaken.
 * A lapsed claim is taken over only by a redelivery, which the served queues' visibility timeout
 * (6 x the function's timeout, src/resources/definitions.ts servedQueuePlan) delays past it.
 */
export const CLAIM_SKEW_MS = 30_000;
export const DEFAULT_CLAIM_LOCK_MS = FUNCTIONS.inference.timeoutSeconds * 1000 + CLAIM_SKEW_MS;

/**
 * The lock of one invocation's claims: the configured one (tests, the local runtime), else the
 * invocation's own remaining time (Lambda's `getRemainingTimeInMillis()`: the function's timeout
 * as deployed, which `sizing` may raise up to 900 s) plus the skew budget, else the default.
 *
 * @example
 * claimLockMs(undefined, 120_000); // 150_000: a function deployed with a 120 s timeout
 */
export function claimLockMs(configured: number | undefined, remainingMs: number | undefined): number {
  if (configured !== undefined) return configured;
  return remainingMs !== undefined && Number.isFinite(remainingMs) && remainingMs > 0 ? remainingMs + CLAIM_SKEW_MS : DEFAULT_CLAIM_LOCK_MS;
}

/** The condition of a write to a claim this handling still holds: `PENDING` under `owner`. */
function stillOurs(owner: string, values: Record<string, AttributeValue> = {}) {
  return {
    ConditionExpression: "#o = :owner AND #s = :pending",
    ExpressionAttributeNames: { "#s": "status", "#o": "owner" },
    ExpressionAttributeValues: { ...values, ":owner": { S: owner }, ":pending": { S: "PENDING" } },
  };
}

export class IdempotencyStore {
  constructor(
    private readonly clients: AwsClients,
    readonly tableName: string,
    readonly modelId: string,
    /** How long a claim holds a row before another handler may take it over (a handler that died), unless a claim says. */
    readonly lockMs: number = DEFAULT_CLAIM_LOCK_MS,
    private readonly now: () => number = Date.now,
  ) {}

  private key(rowId: string) {
    return { pk: { S: `served#${this.modelId}` }, sk: { S: `row#${rowId}` } };
  }

  private claimPut(rowId: string, owner: string, lockMs: number): Put {
    const now = this.now();
    return {
      TableName: this.tableName,
      Item: {
        ...this.key(rowId),
        status: { S: "PENDING" },
        owner: { S: owner },
        lockedUntil: { N: String(now + lockMs) },
        expiresAt: { N: String(Math.floor(now / 1000) + KEEP_SECONDS) },
      },
      ConditionExpression: "attribute_not_exists(sk) OR (#s = :pending AND lockedUntil < :now) OR #o = :owner",
      ExpressionAttributeNames: { "#s": "status", "#o": "owner" },
      ExpressionAttributeValues: { ":pending": { S: "PENDING" }, ":now": { N: String(now) }, ":owner": { S: owner } },
    };
  }

  /**
   * Claims each claim with its own conditional put, all at once. Not one TransactWriteItems: the
   * claims are independent, a transaction costs twice the write capacity and fails whole when one
   * message is a redelivery, and moto copies the whole table per transaction (500s under
   * concurrent writes; README, Reliability). Every put settles before a failure is thrown, so the
   * caller's release of the claims cannot race a put still in flight.
   */
  async claimAll(claims: readonly { readonly rowId: string; readonly owner: string }[], lockMs: number = this.lockMs): Promise<ClaimOutcome[]> {
    const settled = await Promise.allSettled(claims.map((c) => this.claim(c.rowId, c.owner, lockMs)));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) throw failed.reason;
    return settled.map((s) => (s as PromiseFulfilledResult<ClaimOutcome>).value);
  }

  /** Claims `rowId` for the handling identified by `owner`. */
  async claim(rowId: string, owner: string, lockMs: number = this.lockMs): Promise<ClaimOutcome> {
    try {
      await this.clients.dynamodb.send(new PutItemCommand(this.claimPut(rowId, owner, lockMs)));
      return "claimed";
    } catch (e) {
      if (!(e instanceof ConditionalCheckFailedException)) throw e;
    }
    const { Item } = await this.clients.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: this.key(rowId), ConsistentRead: true }));
    if (Item?.status?.S === "DONE") return "done";
    if (Item?.owner?.S === owner) return "claimed"; // our put took effect; its response was lost
    return "busy";
  }

  /**
   * Marks rows whose results were sent as DONE (25 per request). Unconditional on purpose: once a
   * result is on the output queue the row is served, whoever holds the claim now.
   */
  async complete(rowIds: readonly string[]): Promise<void> {
    const expiresAt = String(Math.floor(this.now() / 1000) + KEEP_SECONDS);
    for (let i = 0; i < rowIds.length; i += 25) {
      let items = rowIds.slice(i, i + 25).map((id) => ({ PutRequest: { Item: { ...this.key(id), status: { S: "DONE" }, expiresAt: { N: expiresAt } } } }));
      for (let attempt = 0; items.length; attempt++) {
        const out = await this.clients.dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [this.tableName]: items } }));
        items = (out.UnprocessedItems?.[this.tableName] ?? []) as typeof items;
        if (items.length && attempt >= 8) throw new Error(`${items.length} idempotency records of ${this.modelId} stayed unprocessed after ${attempt + 1} BatchWriteItem calls`);
        if (items.length) await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    }
  }

  /**
   * Moves the lock of a claim still ours (`PENDING` under `owner`) to `lockMs` from now; false
   * when the claim is no longer ours (taken over after it lapsed, or marked `DONE`).
   */
  async renew(rowId: string, owner: string, lockMs: number): Promise<boolean> {
    try {
      await this.clients.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: this.key(rowId),
          UpdateExpression: "SET lockedUntil = :until",
          ...stillOurs(owner, { ":until": { N: String(this.now() + lockMs) } }),
        }),
      );
      return true;
    } catch (e) {
      if (e instanceof ConditionalCheckFailedException) return false;
      throw e;
    }
  }

  /**
   * Holds claims taken at `takenAt` (the local time before the claim requests went out) while a
   * batch runs: see {@link HeldClaims}.
   */
  hold(claims: readonly { readonly rowId: string; readonly owner: string }[], lockMs: number, takenAt: number): HeldClaims {
    return new HeldClaims(this, claims, lockMs, takenAt, this.now);
  }

  /** Gives a claimed row back (its result was not sent), so the redelivery can serve it at once. */
  async release(rowId: string, owner: string): Promise<void> {
    try {
      await this.clients.dynamodb.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: this.key(rowId),
          ...stillOurs(owner),
        }),
      );
    } catch (e) {
      if (!(e instanceof ConditionalCheckFailedException)) throw e; // gone already (a lost response) or taken over
    }
  }
}

/**
 * Claims held while their batch runs: renewed every third of their lock, so a batch that outruns
 * its lock (a stalled call, an engine slower than the function's timeout where nothing kills the
 * handler, as on the local runtime) is not overtaken by a redelivery. A claim is owned, on this
 * host's clock, until its last successful claim or renewal request was sent plus the lock, less
 * the clock skew budget (at most half the lock): past that, or once a renewal finds the claim gone,
 * the handler must not send that message's results.
 */
export class HeldClaims {
  private readonly ownedUntil = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private renewing: Promise<void> = Promise.resolve();
  private readonly skewMs: number;

  constructor(
    private readonly store: Pick<IdempotencyStore, "renew">,
    private readonly claims: readonly { readonly rowId: string; readonly owner: string }[],
    private readonly lockMs: number,
    takenAt: number,
    private readonly now: () => number = Date.now,
    private readonly log: (line: string) => void = (line) => console.error(line),
  ) {
    this.skewMs = Math.min(CLAIM_SKEW_MS, lockMs / 2);
    for (const c of claims) this.ownedUntil.set(c.rowId, takenAt + lockMs - this.skewMs);
    this.timer = setInterval(() => void (this.renewing = this.renewAll()), Math.max(1, Math.floor(lockMs / 3)));
    this.timer.unref();
  }

  /** Whether `rowId`'s claim is still this handling's: its results may be sent. */
  owned(rowId: string): boolean {
    return (this.ownedUntil.get(rowId) ?? -Infinity) > this.now();
  }

  private async renewAll(): Promise<void> {
    await this.renewing;
    const sentAt = this.now();
    await Promise.all(
      this.claims
        .filter((c) => this.ownedUntil.has(c.rowId))
        .map(async (c) => {
          try {
            if (await this.store.renew(c.rowId, c.owner, this.lockMs)) this.ownedUntil.set(c.rowId, Math.max(this.ownedUntil.get(c.rowId)!, sentAt + this.lockMs - this.skewMs));
            else this.ownedUntil.delete(c.rowId);
          } catch (e) {
            // Unknown whether it took effect: the claim stays owned until its last known lock ends.
            this.log(`[inference] renewing the claim on ${c.rowId}: ${(e as Error).message}`);
          }
        }),
    );
  }

  /** Stops renewing; waits for a renewal in flight. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.renewing;
  }
}
