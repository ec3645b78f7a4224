/**
 * An SQS event source mapping, as Lambda runs one: receive a batch, call the handler with an
 * event of the real AWS shape, delete what succeeded, leave failed records (reported as
 * `batchItemFailures`, or all of them when the handler throws) to come back after the
 * visibility timeout and, past the redrive count, to go to the DLQ.
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import type { AwsClients } from "../aws/clients.ts";
import { queueArn } from "../jobs/queues.ts";

export type SqsHandler = (event: SQSEvent) => Promise<SQSBatchResponse | void>;

export interface EventSourceOptions {
  readonly batchSize?: number;
  readonly waitTimeSeconds?: number;
  readonly onError?: (error: unknown) => void;
}

export class SqsEventSource {
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly clients: AwsClients,
    readonly queueUrl: string,
    private readonly handler: SqsHandler,
    private readonly options: EventSourceOptions = {},
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Waits for the receive in flight (at most `waitTimeSeconds`) instead of aborting it: an
   * aborted long poll still takes a message on the server, which then stays invisible for the
   * whole visibility timeout.
   */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async run(): Promise<void> {
    const arn = await queueArn(this.clients, this.queueUrl);
    while (this.running) {
      try {
        const { Messages = [] } = await this.clients.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.queueUrl,
            MaxNumberOfMessages: this.options.batchSize ?? 10,
            WaitTimeSeconds: this.options.waitTimeSeconds ?? 1,
            MessageSystemAttributeNames: ["All"],
            MessageAttributeNames: ["All"],
          }),
        );
        if (!Messages.length) continue;
        const records: SQSRecord[] = Messages.map((m) => ({
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
          failed = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
        } catch (e) {
          this.options.onError?.(e);
        }
        const done = records.filter((r) => !failed.has(r.messageId));
        if (done.length) {
          await this.clients.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })) }));
        }
      } catch (e) {
        if (!this.running) return;
        this.options.onError?.(e);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }
}
