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
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import type { AwsClients } from "../../src/aws/clients.ts";
import { createDecoder, createEncoder } from "../../src/codec/example.ts";
import type { Column } from "../../src/codec/schema.ts";
import { frameRecords, unframeRecords } from "../../src/codec/tfrecord.ts";

import { rowFromJson } from "../../src/codec/table-rows.ts";
import { rowToJson } from "../../src/protocol/table-source.ts";
import type { ModelMetadata } from "../../src/protocol/model-metadata.ts";
import type { InferenceEngine } from "./engine.ts";
import { IdempotencyStore } from "./idempotency.ts";
import { LatestModel } from "./latest-model.ts";
import { parseInputRow, rejection, type RejectedMessage, type ResultMessage } from "../../src/protocol/inference-messages.ts";
import { ROW_ID, ROW_ID_COLUMN } from "../../src/protocol/feed-messages.ts";
import type { InferenceFunction, InferenceSettings, ServiceTotals } from "../../src/runtime/functions.ts";

/** SQS's limit on the total size of one SendMessageBatch (256 KiB), less room for the request's own fields. */
const MAX_BATCH_BYTES = 250_000;

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
  readonly decoder: ReturnType<typeof createDecoder>;
  readonly input: readonly Column[];
}

export class InferenceService implements InferenceFunction {
  private readonly latest: LatestModel;
  private readonly idempotency: IdempotencyStore;
  private coders: Coders | undefined;
  lastReport: BatchReport | undefined;
  readonly totals: ServiceTotals = { results: 0, rejected: 0, retried: 0, duplicates: 0, redelivered: 0 };

  constructor(
    private readonly clients: AwsClients,
    readonly settings: InferenceSettings,
    readonly engine: InferenceEngine,
    private readonly log: (line: string) => void = (line) => console.error(line),
  ) {
    this.latest = new LatestModel(clients, settings.bucket, settings.modelId, settings.recheckMs);
    this.idempotency = new IdempotencyStore(clients, settings.tableName, settings.modelId, settings.claimLockMs);
  }

  /** The SQS handler: one call per batch, partial failures in the response. Safe to call concurrently. */
  async handle(event: SQSEvent): Promise<SQSBatchResponse> {
    const rejected: RejectedMessage[] = [];
    const retry = new Set<string>();
    let metadata: ModelMetadata | undefined;
    let results: { messageId: string; rowId: string; body: ResultMessage }[] = [];
    let duplicates = 0;
    const parsed: { record: SQSRecord; id: string; row: Record<string, unknown> }[] = [];
    for (const record of event.Records) {
      try {
        const message = parseInputRow(record.body);
        parsed.push({ record, id: message.id, row: message.row });
      } catch (e) {
        rejected.push(rejection(record, e));
      }
    }
    const handling = randomUUID();
    const claimed: { p: (typeof parsed)[number]; owner: string; frame: Uint8Array; index: number }[] = [];
    if (parsed.length) {
      try {
        metadata = await this.latest.current();
        const coders = this.codersFor(metadata);
        const good: { p: (typeof parsed)[number]; frame: Uint8Array }[] = [];
        for (const p of parsed) {
          try {
            const row = { ...rowFromJson(p.row, coders.input, good.length), [ROW_ID]: BigInt(good.length) };
            good.push({ p, frame: coders.encoder.encode(row, good.length) });
          } catch (e) {
            rejected.push(rejection(p.record, e));
          }
        }
        // Claim before running: a row served already (or being served by another handler) is not run again.
        const outcomes = await Promise.all(
          good.map(async (g, index) => {
            const owner = `${handling}:${g.p.record.messageId}`;
            try {
              return { g, index, owner, outcome: await this.idempotency.claim(g.p.id, owner) };
            } catch (e) {
              this.log(`[inference ${this.settings.modelId}] claiming row ${g.p.id} failed: ${(e as Error).message}`);
              return { g, index, owner, outcome: "busy" as const };
            }
          }),
        );
        for (const o of outcomes) {
          if (o.outcome === "claimed") claimed.push({ p: o.g.p, owner: o.owner, frame: o.g.frame, index: o.index });
          else if (o.outcome === "done") duplicates += 1; // acknowledged without a second result
          else retry.add(o.g.p.record.messageId);
        }
        if (claimed.length) {
          await this.engine.ensure(metadata);
          const out = await this.engine.predict(metadata.version, frameRecords(claimed.map((c) => c.frame)));
          const byIndex = new Map(claimed.map((c) => [c.index, c.p]));
          results = unframeRecords(out).map((bytes) => {
            const { [ROW_ID]: index, ...values } = coders.decoder.decode(bytes);
            const p = byIndex.get(Number(index as bigint))!;
            const body: ResultMessage = { v: 1, kind: "result", id: p.id, modelId: metadata!.modelId, version: metadata!.version, row: JSON.parse(rowToJson(values)) as Record<string, unknown> };
            return { messageId: p.record.messageId, rowId: p.id, body };
          });
          if (results.length !== claimed.length) throw new Error(`the engine answered ${results.length} of ${claimed.length} rows`);
        }
      } catch (e) {
        this.log(`[inference ${this.settings.modelId}] ${(e as Error).message}`);
        results = [];
        for (const p of parsed) if (!rejected.some((r) => r.messageId === p.record.messageId)) retry.add(p.record.messageId);
      }
    }
    const [failedResults, failedRejections] = await Promise.all([
      this.sendAll(this.settings.outputQueueUrl, results),
      this.sendAll(this.settings.dlqUrl, rejected.map((r) => ({ messageId: r.messageId, rowId: r.reason.row ?? r.messageId, body: r }))),
    ]);
    for (const id of [...failedResults, ...failedRejections]) retry.add(id);
    // Unsent rows go back to the queue unclaimed; sent ones are DONE (a failure to record that only
    // costs a second result if the message comes back after the claim's lock lapsed).
    const sent = results.filter((r) => !failedResults.includes(r.messageId)).map((r) => r.rowId);
    await Promise.all(claimed.filter((c) => retry.has(c.p.record.messageId)).map((c) => this.idempotency.release(c.p.id, c.owner).catch((e: unknown) => this.log(`[inference ${this.settings.modelId}] releasing row ${c.p.id}: ${(e as Error).message}`))));
    await this.idempotency.complete(sent).catch((e: unknown) => this.log(`[inference ${this.settings.modelId}] recording ${sent.length} served rows: ${(e as Error).message}`));
    const report: BatchReport = { version: metadata?.version, results: sent.length, rejected: rejected.length - failedRejections.length, retried: retry.size, duplicates };
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
        decoder: createDecoder([...inference.output.columns, ROW_ID_COLUMN]),
      };
    }
    return this.coders;
  }

  /**
   * Sends bodies in batches of at most 10 entries and 256 KiB (SQS's limits for one
   * SendMessageBatch), all batches at once; returns the message ids whose send failed. On a FIFO
   * queue each entry carries the row id as its deduplication id: the SDK's retry of a send whose
   * response was lost then adds no second copy (SQS drops a repeated id for 5 minutes).
   */
  private async sendAll(queueUrl: string, items: readonly { messageId: string; rowId: string; body: unknown }[]): Promise<string[]> {
    const failed: string[] = [];
    const fifo = queueUrl.endsWith(".fifo");
    const chunks: { messageId: string; rowId: string; text: string }[][] = [];
    let size = 0;
    for (const item of items) {
      const text = JSON.stringify(item.body);
      const bytes = Buffer.byteLength(text);
      const last = chunks.at(-1);
      if (!last || last.length === 10 || size + bytes > MAX_BATCH_BYTES) {
        chunks.push([{ ...item, text }]);
        size = bytes;
      } else {
        last.push({ ...item, text });
        size += bytes;
      }
    }
    await Promise.all(
      chunks.map(async (chunk) => {
        try {
          const entries = chunk.map((c, i) => ({
            Id: String(i),
            MessageBody: c.text,
            ...(fifo ? { MessageGroupId: c.rowId, MessageDeduplicationId: createHash("sha256").update(`${this.settings.modelId}\n${c.rowId}`).digest("hex") } : {}),
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
