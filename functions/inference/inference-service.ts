/**
 * The SQS inference function's core: per batch of input rows, serve the model version that
 * `latest.json` names (re-checked cheaply, see latest-model.ts), run it once on every good row,
 * send each result to the output queue at once with its row id and the version that produced
 * it, and send each bad row to the dead-letter queue with a machine-readable reason.
 *
 * A row that can never succeed (a body that is not a row message, a value that does not fit the
 * model's input schema) is dead-lettered here, with its reason, and not retried: SQS's redrive
 * would move it only after `maxReceiveCount` useless attempts and without any reason. A failure
 * a retry can fix (no version published yet, S3 unavailable, the engine crashed) is reported in
 * `batchItemFailures` for those rows only; SQS retries them and, past the redrive count, moves
 * them to the DLQ. Good rows of a batch are never retried because of a bad one.
 *
 * Exactly one result per row id, although SQS delivers at least once: each good row is claimed
 * in the idempotency store (idempotency.ts: a conditional put on the registry table) before the
 * model runs, a row served already is acknowledged without a second result, and a row another
 * handler is serving is retried later. On a FIFO output queue, sends carry the row id as the
 * deduplication id, which covers the one gap a store cannot: a send that took effect but whose
 * response was lost, which the SDK retries.
 */
import { createHash, randomUUID } from "node:crypto";
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import type { AwsClients } from "../../src/aws/clients.ts";
import { createEncoder } from "../../src/codec/example.ts";
import type { Column, Row } from "../../src/codec/schema.ts";

import { rowFromJson } from "../../src/codec/table-rows.ts";
import { rowToJsonValues } from "../../src/protocol/table-source.ts";
import type { ModelMetadata } from "../../src/protocol/model-metadata.ts";
import type { InferenceEngine } from "./engine.ts";
import { IdempotencyStore, claimLockMs, type HeldClaims } from "./idempotency.ts";
import { LatestModel } from "./latest-model.ts";
import { parseInputMessage, rejection, rowRejection, type RejectedMessage, type ResultMessage, type ResultsMessage } from "../../src/protocol/inference-messages.ts";
import { SQS_MAX_MESSAGE_BYTES, sendBatches } from "../../src/protocol/limits.ts";
import { ROW_ID, ROW_ID_COLUMN } from "../../src/protocol/feed-messages.ts";
import type { InferenceFunction, InferenceSettings, ServiceTotals } from "../../src/runtime/functions.ts";

/** Most rows in one engine call: a bigger SQS batch runs as several calls. */
const MAX_ROWS_PER_CALL = 8_192;

/** Adds the time since its last lap to a stage's total: where a batch's time goes, for the bench and the logs. */
class StageClock {
  private last = performance.now();
  constructor(private readonly into: Record<string, number>) {}
  lap(stage: string): void {
    const now = performance.now();
    this.into[stage] = (this.into[stage] ?? 0) + (now - this.last);
    this.last = now;
  }
}

/** One input message: its rows, and the key its claim is taken under (the row id of a one-row message). */
interface Unit {
  readonly record: SQSRecord;
  readonly batched: boolean;
  readonly claimKey: string;
  readonly rows: { readonly id: string; readonly row: Readonly<Record<string, unknown>> }[];
}

/** An output message to send for the input message `messageId`, with the number of rows it answers. */
interface OutputItem {
  readonly messageId: string;
  readonly dedupeKey: string;
  readonly body: ResultMessage | ResultsMessage;
  readonly rows: number;
}

/**
 * The output of one input message: a result for a one-row message; for a message of rows, its
 * results in one `results` message, or in several when they would not fit one SQS message.
 */
function outputMessages(unit: Unit, rows: readonly { id: string; row: Record<string, unknown> }[], metadata: ModelMetadata): OutputItem[] {
  const { modelId, version } = metadata;
  const messageId = unit.record.messageId;
  if (!unit.batched) return rows.map((r) => ({ messageId, dedupeKey: unit.claimKey, rows: 1, body: { v: 1, kind: "result", id: r.id, modelId, version, row: r.row } }));
  const items: OutputItem[] = [];
  const budget = SQS_MAX_MESSAGE_BYTES - 1_024 - Buffer.byteLength(JSON.stringify({ v: 1, kind: "results", modelId, version, rows: [] }));
  let part: { id: string; row: Record<string, unknown> }[] = [];
  let bytes = 0;
  const flush = () => {
    if (!part.length) return;
    items.push({ messageId, dedupeKey: `${unit.claimKey}:${items.length}`, rows: part.length, body: { v: 1, kind: "results", modelId, version, rows: part } });
    part = [];
    bytes = 0;
  };
  for (const r of rows) {
    const size = Buffer.byteLength(JSON.stringify(r)) + 1;
    if (bytes + size > budget) flush();
    part.push(r);
    bytes += size;
  }
  flush();
  return items;
}

/** What one batch did, for logs, tests and the bench. */
export interface BatchReport {
  readonly version: string | undefined;
  readonly results: number;
  readonly rejected: number;
  readonly retried: number;
  /** Rows acknowledged without a result because an earlier delivery was served (idempotency). */
  readonly duplicates: number;
}

interface Coders {
  readonly key: string;
  readonly encoder: ReturnType<typeof createEncoder>;
  readonly input: readonly Column[];
}

export class InferenceService implements InferenceFunction {
  private readonly latest: LatestModel;
  private readonly idempotency: IdempotencyStore;
  private coders: Coders | undefined;
  lastReport: BatchReport | undefined;
  readonly totals: ServiceTotals = { results: 0, rejected: 0, retried: 0, duplicates: 0, redelivered: 0, stageMs: {} };

  constructor(
    private readonly clients: AwsClients,
    readonly settings: InferenceSettings,
    readonly engine: InferenceEngine,
    private readonly log: (line: string) => void = (line) => console.error(line),
  ) {
    this.latest = new LatestModel(clients, settings.bucket, settings.modelId, settings.recheckMs);
    // Each batch passes its own lock (claimLockMs: the configured one, else the invocation's time left).
    this.idempotency = new IdempotencyStore(clients, settings.tableName, settings.modelId);
  }

  /**
   * The SQS handler: one call per batch, partial failures in the response. Safe to call concurrently.
   * Its claims outlast the invocation's time left (`context.getRemainingTimeInMillis()`).
   */
  async handle(event: SQSEvent, context?: Pick<Context, "getRemainingTimeInMillis">): Promise<SQSBatchResponse> {
    const lockMs = claimLockMs(this.settings.claimLockMs, context?.getRemainingTimeInMillis());
    const stages = new StageClock(this.totals.stageMs);
    const rejected: RejectedMessage[] = [];
    const retry = new Set<string>();
    let metadata: ModelMetadata | undefined;
    let duplicates = 0;
    const units: Unit[] = [];
    for (const record of event.Records) {
      try {
        const message = parseInputMessage(record.body);
        if ("rows" in message) {
          const rows: Unit["rows"] = [];
          for (const entry of message.rows) {
            if ("error" in entry) rejected.push(rowRejection(record.messageId, entry.body, entry.id, entry.error));
            else rows.push({ id: entry.id, row: entry.row });
          }
          // A message of rows is claimed whole: SQS redelivers it under the same message id.
          units.push({ record, batched: true, claimKey: `message:${record.messageId}`, rows });
        } else {
          units.push({ record, batched: false, claimKey: message.id, rows: [{ id: message.id, row: message.row }] });
        }
      } catch (e) {
        rejected.push(rejection(record, e));
      }
    }
    const handling = randomUUID();
    const claimed: { unit: Unit; owner: string }[] = [];
    let outputs: OutputItem[] = [];
    let served = 0;
    let held: HeldClaims | undefined;
    const live = units.filter((u) => u.rows.length);
    if (live.length) {
      try {
        stages.lap("parse");
        metadata = await this.latest.current();
        const coders = this.codersFor(metadata);
        stages.lap("model");
        // Encode every row first: a row that does not fit the schema is dead-lettered on its own.
        // The row id feature is the row's place in `all`, so an answer finds its row there.
        const all: { unit: Unit; id: string; row: Row; frame: Uint8Array }[] = [];
        const encoded = new Map<Unit, number>();
        for (const unit of live) {
          let frames = 0;
          for (const [i, r] of unit.rows.entries()) {
            try {
              const row = { ...rowFromJson(r.row, coders.input, i), [ROW_ID]: BigInt(all.length) };
              const frame = coders.encoder.encode(row, i);
              all.push({ unit, id: r.id, row, frame });
              frames += 1;
            } catch (e) {
              rejected.push(unit.batched ? rowRejection(unit.record.messageId, JSON.stringify({ id: r.id, row: r.row }), r.id, e) : rejection(unit.record, e));
            }
          }
          if (frames) encoded.set(unit, frames);
        }
        stages.lap("encode");
        // The engine is started and the version loaded before any row is claimed: a cold start
        // (seconds for a Python engine) spent holding claims would bring the lock's end closer.
        if (encoded.size) await this.engine.ensure(metadata);
        stages.lap("model");
        // Claim before running: a unit served already (or being served by another handler) is not run again.
        const toClaim = [...encoded.keys()].map((unit) => ({ unit, rowId: unit.claimKey, owner: `${handling}:${unit.record.messageId}` }));
        const takenAt = Date.now();
        const claims = await this.idempotency.claimAll(toClaim, lockMs).catch(async (e: unknown) => {
          this.log(`[inference ${this.settings.modelId}] claiming ${toClaim.length} messages failed: ${(e as Error).message}`);
          // The request may have taken effect with its response lost: give back what this handling may
          // hold, or the messages' redeliveries would find them locked until the claims lapse.
          await Promise.all(toClaim.map((c) => this.idempotency.release(c.rowId, c.owner).catch(() => undefined)));
          return toClaim.map(() => "busy" as const);
        });
        const outcomes = toClaim.map((c, i) => ({ unit: c.unit, owner: c.owner, outcome: claims[i]! }));
        for (const o of outcomes) {
          if (o.outcome === "claimed") claimed.push({ unit: o.unit, owner: o.owner });
          else if (o.outcome === "done") duplicates += encoded.get(o.unit)!; // acknowledged without a second result
          else retry.add(o.unit.record.messageId);
        }
        held = this.idempotency.hold(claimed.map((c) => ({ rowId: c.unit.claimKey, owner: c.owner })), lockMs, takenAt);
        stages.lap("claim");
        if (claimed.length) {
          // The whole SQS batch as few model calls as the engine's call size allows.
          const mine = new Set(claimed.map((c) => c.unit));
          const order = all.filter((a) => mine.has(a.unit));
          const results = new Map<Unit, { id: string; row: Record<string, unknown> }[]>();
          for (let start = 0; start < order.length; start += MAX_ROWS_PER_CALL) {
            const chunk = order.slice(start, start + MAX_ROWS_PER_CALL);
            const answered = await this.engine.predict(metadata.version, { rows: chunk.map((c) => c.row), frames: chunk.map((c) => c.frame) });
            if (answered.length !== chunk.length) throw new Error(`the engine answered ${answered.length} of ${chunk.length} rows`);
            for (const answer of answered) {
              const { [ROW_ID]: index, ...values } = answer;
              const at = all[Number(index as bigint)]!;
              const list = results.get(at.unit) ?? [];
              list.push({ id: at.id, row: rowToJsonValues(values) });
              results.set(at.unit, list);
            }
          }
          stages.lap("engine");
          outputs = claimed.flatMap(({ unit }) => outputMessages(unit, results.get(unit) ?? [], metadata!));
          stages.lap("decode");
        }
      } catch (e) {
        this.log(`[inference ${this.settings.modelId}] ${(e as Error).message}`);
        outputs = [];
        for (const unit of live) retry.add(unit.record.messageId);
      }
    }
    // Results go out only under a claim still ours (renewed until the sends are done): one that
    // lapsed may be another handler's by now.
    for (const c of claimed) if (!held?.owned(c.unit.claimKey)) retry.add(c.unit.record.messageId);
    outputs = outputs.filter((o) => !retry.has(o.messageId));
    // A message that comes back is judged again then: its bad rows are dead-lettered on that
    // delivery, not twice. So the dead letters wait for the results: a message whose good rows
    // failed to send comes back, and its bad rows are sent from that delivery only.
    for (const id of await this.sendAll(this.settings.outputQueueUrl, outputs)) retry.add(id);
    const deadLetters = rejected.filter((r) => !retry.has(r.messageId));
    const failedRejections = await this.sendAll(this.settings.dlqUrl, deadLetters.map((r) => ({ messageId: r.messageId, dedupeKey: `${r.messageId}:${r.reason.row ?? ""}`, body: r })));
    for (const id of failedRejections) retry.add(id);
    stages.lap("send");
    await held?.stop();
    // Unsent units go back to the queue unclaimed; sent ones are DONE (a failure to record that only
    // costs a second result if the message comes back after the claim's lock lapsed).
    const sent = claimed.filter((c) => !retry.has(c.unit.record.messageId));
    for (const o of outputs) if (!retry.has(o.messageId)) served += o.rows;
    await Promise.all(
      claimed
        .filter((c) => retry.has(c.unit.record.messageId))
        .map((c) => this.idempotency.release(c.unit.claimKey, c.owner).catch((e: unknown) => this.log(`[inference ${this.settings.modelId}] releasing ${c.unit.claimKey}: ${(e as Error).message}`))),
    );
    await this.idempotency.complete(sent.map((c) => c.unit.claimKey)).catch((e: unknown) => this.log(`[inference ${this.settings.modelId}] recording ${sent.length} served messages: ${(e as Error).message}`));
    stages.lap("complete");
    const report: BatchReport = { version: metadata?.version, results: served, rejected: deadLetters.length - failedRejections.length, retried: retry.size, duplicates };
    this.lastReport = report;
    this.totals.results += report.results;
    this.totals.rejected += report.rejected;
    this.totals.retried += report.retried;
    this.totals.duplicates += report.duplicates;
    this.totals.redelivered += event.Records.filter((r) => Number(r.attributes?.ApproximateReceiveCount ?? 1) > 1).length;
    return { batchItemFailures: [...retry].map((itemIdentifier) => ({ itemIdentifier })) };
  }

  private codersFor(metadata: ModelMetadata): Coders {
    const inference = metadata.inference;
    if (!inference) throw new Error(`model ${metadata.modelId} version ${metadata.version} has no inference config: set inference scripts and output columns on the estimator before fit`);
    const key = JSON.stringify([inference.input.columns, inference.output.columns]);
    if (this.coders?.key !== key) {
      this.coders = {
        key,
        input: inference.input.columns,
        encoder: createEncoder([...inference.input.columns, ROW_ID_COLUMN]),
      };
    }
    return this.coders;
  }

  /**
   * Sends bodies in batches of at most 10 entries and 1 MiB (SQS's limits for one
   * SendMessageBatch), all batches at once; returns the input message ids whose send failed. On
   * a FIFO queue each entry carries its key (the row id of a one-row message) as its deduplication
   * id: the SDK's retry of a send whose response was lost then adds no second copy (SQS drops a
   * repeated id for 5 minutes).
   */
  private async sendAll(queueUrl: string, items: readonly { messageId: string; dedupeKey: string; body: unknown }[]): Promise<string[]> {
    const failed: string[] = [];
    const fifo = queueUrl.endsWith(".fifo");
    const chunks = sendBatches(items.map((item) => ({ ...item, text: JSON.stringify(item.body) })), (c) => Buffer.byteLength(c.text));
    await Promise.all(
      chunks.map(async (chunk) => {
        try {
          const entries = chunk.map((c, i) => ({
            Id: String(i),
            MessageBody: c.text,
            ...(fifo ? { MessageGroupId: c.dedupeKey, MessageDeduplicationId: createHash("sha256").update(`${this.settings.modelId}\n${c.dedupeKey}`).digest("hex") } : {}),
          }));
          const out = await this.clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
          for (const f of out.Failed ?? []) failed.push(chunk[Number(f.Id)]!.messageId);
        } catch (e) {
          this.log(`[inference ${this.settings.modelId}] sending to ${queueUrl} failed: ${(e as Error).message}`);
          failed.push(...chunk.map((c) => c.messageId));
        }
      }),
    );
    return failed;
  }

  async close(): Promise<void> {
    await this.engine.close();
  }
}
