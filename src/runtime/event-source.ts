/**
 * An SQS event source mapping, as Lambda runs one: receive a batch, call the handler with an
 * event of the real AWS shape, delete what succeeded, leave failed records (reported as
 * `batchItemFailures`, or all of them when the handler throws) to come back after the
 * visibility timeout and, past the redrive count, to go to the DLQ.
 *
 * Up to `concurrency` batches are in the handler at once, as Lambda scales an SQS mapping up to
 * its maximum concurrency; the handler must therefore accept concurrent calls (and, as on AWS,
 * the same message twice: SQS is at-least-once).
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import type { AwsClients } from "../aws/clients.ts";
import { ConfigError } from "../errors.ts";
import { queueArn } from "../jobs/queues.ts";

export type SqsHandler = (event: SQSEvent) => Promise<SQSBatchResponse | void>;

export interface EventSourceOptions {
  /** Records per invocation, 1 to 10,000 (more than 10 takes several receives); default 10. */
  readonly batchSize?: number;
  /** How long to gather records once the first arrives, until `batchSize` (0 to 300 s); default 0: one receive. */
  readonly maxBatchingWindowSeconds?: number;
  /** Honour `batchItemFailures` in the handler's response (the mapping's ReportBatchItemFailures); default true. Off, a returned batch is deleted whole. */
  readonly reportBatchItemFailures?: boolean;
  readonly waitTimeSeconds?: number;
  /** Batches in the handler at once (Lambda's maximum concurrency for an SQS mapping); default 1. */
  readonly concurrency?: number;
  readonly onError?: (error: unknown) => void;
}

export class SqsEventSource {
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly clients: AwsClients,
    readonly queueUrl: string,
    private readonly handler: SqsHandler,
    private readonly options: EventSourceOptions = {},
  ) {
    const n = options.concurrency ?? 1;
    if (!Number.isSafeInteger(n) || n < 1 || n > 1000) throw new ConfigError("concurrency", n, "an integer of pollers from 1 to 1000");
    const size = options.batchSize ?? 10;
    if (!Number.isSafeInteger(size) || size < 1 || size > 10_000) throw new ConfigError("batchSize", size, "an integer of records from 1 to 10000");
    const window = options.maxBatchingWindowSeconds ?? 0;
    if (!(window >= 0 && window <= 300)) throw new ConfigError("maxBatchingWindowSeconds", window, "seconds from 0 to 300");
    if (size > 10 && window === 0) throw new ConfigError("maxBatchingWindowSeconds", window, "at least 1 when batchSize is over 10 (as Lambda requires)");
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const arn = queueArn(this.clients, this.queueUrl);
    arn.catch(() => undefined); // each poller reports it through onError
    this.loops = [this.run(arn)];
  }

  /**
   * Waits for the receive in flight (at most `waitTimeSeconds`) instead of aborting it: an
   * aborted long poll still takes a message on the server, which then stays invisible for the
   * whole visibility timeout.
   */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  /**
   * One long poll at a time, and up to `concurrency` batches in the handler: Lambda scales its
   * pollers with the backlog, and idle pollers here would each hold a long poll on the emulator.
   */
  private async run(arnPromise: Promise<string>): Promise<void> {
    let arn: string;
    try {
      arn = await arnPromise;
    } catch (e) {
      this.running = false;
      this.options.onError?.(e);
      return;
    }
    const limit = this.options.concurrency ?? 1;
    const inFlight = new Set<Promise<void>>();
    while (this.running) {
      if (inFlight.size >= limit) {
        await Promise.race(inFlight);
        continue;
      }
      try {
        const messages = await this.receiveBatch();
        if (!messages.length) continue;
        const handled: Promise<void> = this.handle(arn, messages).finally(() => inFlight.delete(handled));
        inFlight.add(handled);
      } catch (e) {
        if (!this.running) break;
        this.options.onError?.(e);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    await Promise.all(inFlight);
  }

  /** Calls the handler with one batch, then deletes what it did not report failed. */
  private async handle(arn: string, messages: readonly Message[]): Promise<void> {
    const records: SQSRecord[] = messages.map((m) => ({
      messageId: m.MessageId!,
      receiptHandle: m.ReceiptHandle!,
      body: m.Body ?? "",
      attributes: (m.Attributes ?? {}) as unknown as SQSRecord["attributes"],
      messageAttributes: Object.fromEntries(
        Object.entries(m.MessageAttributes ?? {}).map(([k, v]) => [k, { stringValue: v.StringValue, dataType: v.DataType ?? "String", stringListValues: [], binaryListValues: [] }]),
      ),
      md5OfBody: m.MD5OfBody ?? "",
      eventSource: "aws:sqs",
      eventSourceARN: arn,
      awsRegion: this.clients.settings.region,
    }));
    let failed = new Set(records.map((r) => r.messageId));
    try {
      const response = await this.handler({ Records: records });
      failed = new Set(this.options.reportBatchItemFailures === false ? [] : (response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
    } catch (e) {
      this.options.onError?.(e);
    }
    const done = records.filter((r) => !failed.has(r.messageId));
    try {
      for (let i = 0; i < done.length; i += 10) {
        const chunk = done.slice(i, i + 10);
        await this.clients.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: chunk.map((r, j) => ({ Id: String(j), ReceiptHandle: r.receiptHandle })) }));
      }
    } catch (e) {
      // Undeleted, the records come back after the visibility timeout, as on Lambda.
      this.options.onError?.(e);
    }
  }

  /** One long poll; with a batching window, more receives until the batch is full or the window has passed since the first record. */
  private async receiveBatch(): Promise<Message[]> {
    const size = this.options.batchSize ?? 10;
    const windowMs = (this.options.maxBatchingWindowSeconds ?? 0) * 1000;
    const batch: Message[] = [];
    const receive = async (waitSeconds: number) =>
      (
        await this.clients.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.queueUrl,
            MaxNumberOfMessages: Math.min(10, size - batch.length),
            WaitTimeSeconds: waitSeconds,
            MessageSystemAttributeNames: ["All"],
            MessageAttributeNames: ["All"],
          }),
        )
      ).Messages ?? [];
    batch.push(...(await receive(this.options.waitTimeSeconds ?? 1)));
    if (!batch.length || windowMs === 0) return batch;
    const windowEnd = Date.now() + windowMs;
    while (batch.length < size && this.running) {
      const left = windowEnd - Date.now();
      if (left <= 0) break;
      const more = await receive(Math.min(20, Math.floor(left / 1000)));
      batch.push(...more);
      if (!more.length && left < 1000) await new Promise((r) => setTimeout(r, Math.min(left, 100)));
    }
    return batch;
  }
}
