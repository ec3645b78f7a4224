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
 */
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import type { AwsClients } from "../aws/clients.ts";
import { createDecoder, createEncoder } from "../coding/example.ts";
import type { Column } from "../coding/schema.ts";
import { frameRecords, unframeRecords } from "../coding/tfrecord.ts";
import { ROW_ID, ROW_ID_COLUMN } from "../feed/shard-feed.ts";
import { rowFromJson } from "../feed/rows.ts";
import { rowToJson } from "../jobs/source.ts";
import type { ModelMetadata } from "../models/metadata.ts";
import type { InferenceEngine } from "./engine.ts";
import { LatestModel } from "./latest-model.ts";
import { parseInputRow, rejection, type RejectedMessage, type ResultMessage } from "./messages.ts";

export interface InferenceSettings {
  readonly bucket: string;
  readonly modelId: string;
  readonly outputQueueUrl: string;
  readonly dlqUrl: string;
  /** How often `latest.json` is re-checked (HeadObject), in milliseconds. */
  readonly recheckMs: number;
}

/** What one batch did, for logs, tests and the bench. */
export interface BatchReport {
  readonly version: string | undefined;
  readonly results: number;
  readonly rejected: number;
  readonly retried: number;
}

interface Coders {
  readonly key: string;
  readonly encoder: ReturnType<typeof createEncoder>;
  readonly decoder: ReturnType<typeof createDecoder>;
  readonly input: readonly Column[];
}

export class InferenceService {
  private readonly latest: LatestModel;
  private coders: Coders | undefined;
  lastReport: BatchReport | undefined;

  constructor(
    private readonly clients: AwsClients,
    readonly settings: InferenceSettings,
    readonly engine: InferenceEngine,
    private readonly log: (line: string) => void = console.error,
  ) {
    this.latest = new LatestModel(clients, settings.bucket, settings.modelId, settings.recheckMs);
  }

  /** The SQS handler: one call per batch, partial failures in the response. */
  async handle(event: SQSEvent): Promise<SQSBatchResponse> {
    const rejected: RejectedMessage[] = [];
    const retry = new Set<string>();
    let metadata: ModelMetadata | undefined;
    let results: { messageId: string; body: ResultMessage }[] = [];
    const parsed: { record: SQSRecord; id: string; row: Record<string, unknown> }[] = [];
    for (const record of event.Records) {
      try {
        const message = parseInputRow(record.body);
        parsed.push({ record, id: message.id, row: message.row });
      } catch (e) {
        rejected.push(rejection(record, e));
      }
    }
    if (parsed.length) {
      try {
        metadata = await this.latest.current();
        const coders = this.codersFor(metadata);
        const good: typeof parsed = [];
        const encoded: Uint8Array[] = [];
        for (const p of parsed) {
          try {
            const row = { ...rowFromJson(p.row, coders.input, good.length), [ROW_ID]: BigInt(good.length) };
            encoded.push(coders.encoder.encode(row, good.length));
            good.push(p);
          } catch (e) {
            rejected.push(rejection(p.record, e));
          }
        }
        if (good.length) {
          await this.engine.ensure(metadata);
          const out = await this.engine.predict(metadata.version, frameRecords(encoded));
          results = unframeRecords(out).map((bytes) => {
            const { [ROW_ID]: index, ...values } = coders.decoder.decode(bytes);
            const p = good[Number(index as bigint)]!;
            const body: ResultMessage = { v: 1, kind: "result", id: p.id, modelId: metadata!.modelId, version: metadata!.version, row: JSON.parse(rowToJson(values)) as Record<string, unknown> };
            return { messageId: p.record.messageId, body };
          });
          if (results.length !== good.length) throw new Error(`the engine answered ${results.length} of ${good.length} rows`);
        }
      } catch (e) {
        this.log(`[inference ${this.settings.modelId}] ${(e as Error).message}`);
        results = [];
        for (const p of parsed) if (!rejected.some((r) => r.messageId === p.record.messageId)) retry.add(p.record.messageId);
      }
    }
    const [failedResults, failedRejections] = await Promise.all([
      this.sendAll(this.settings.outputQueueUrl, results),
      this.sendAll(this.settings.dlqUrl, rejected.map((r) => ({ messageId: r.messageId, body: r }))),
    ]);
    for (const id of [...failedResults, ...failedRejections]) retry.add(id);
    this.lastReport = { version: metadata?.version, results: results.length - failedResults.length, rejected: rejected.length - failedRejections.length, retried: retry.size };
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

  /** Sends bodies 10 per request, all requests at once; returns the message ids whose send failed. */
  private async sendAll(queueUrl: string, items: readonly { messageId: string; body: unknown }[]): Promise<string[]> {
    const failed: string[] = [];
    const chunks = Array.from({ length: Math.ceil(items.length / 10) }, (_, i) => items.slice(i * 10, i * 10 + 10));
    await Promise.all(
      chunks.map(async (chunk) => {
        try {
          const out = await this.clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: chunk.map((c, i) => ({ Id: String(i), MessageBody: JSON.stringify(c.body) })) }));
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
