/**
 * Collects what inference workers write to a job's output queue: decodes each rows message
 * with the output columns, keeps one row per row id (a redelivered message adds nothing) and
 * knows the output is complete when every member has sent its end-of-output.
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import type { AwsClients } from "../aws/clients.ts";
import { createDecoder } from "../coding/example.ts";
import type { Column, ColumnValue } from "../coding/schema.ts";
import { unframeRecords } from "../coding/tfrecord.ts";
import { ROW_ID, ROW_ID_COLUMN } from "../feed/shard-feed.ts";
import type { OutputMessage } from "../feed/messages.ts";

export type OutputRow = Record<string, ColumnValue>;

export class OutputCollector {
  readonly rows = new Map<bigint, OutputRow>();
  private readonly ended = new Map<string, number>();
  private readonly decoder;

  constructor(
    private readonly clients: AwsClients,
    private readonly queueUrl: string,
    columns: readonly Column[],
    private readonly members: readonly string[],
  ) {
    this.decoder = createDecoder([...columns, ROW_ID_COLUMN]);
  }

  /** Receives one batch (long polling up to `waitSeconds`); returns how many messages it took. */
  async poll(waitSeconds = 1): Promise<number> {
    const { Messages = [] } = await this.clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: this.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: waitSeconds }));
    for (const m of Messages) {
      const message = JSON.parse(m.Body ?? "{}") as OutputMessage;
      if (message.kind === "rows") {
        for (const record of unframeRecords(new Uint8Array(Buffer.from(message.data, "base64")))) {
          const row = this.decoder.decode(record);
          this.rows.set(row[ROW_ID] as bigint, row);
        }
      } else if (message.kind === "end-of-output") {
        this.ended.set(message.member, message.rows);
      }
    }
    if (Messages.length) {
      await this.clients.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
    }
    return Messages.length;
  }

  /** Every member said it is done, and every row it reported has arrived. */
  get complete(): boolean {
    if (!this.members.every((m) => this.ended.has(m))) return false;
    const promised = [...this.ended.values()].reduce((a, b) => a + b, 0);
    return this.rows.size >= promised;
  }
}
