/**
 * What inference workers write to a job's output: decodes each rows message with the output
 * columns, keeps one row per row id (a redelivered message adds nothing) and knows the output is
 * complete when every member has sent its end-of-output and every row it announced has arrived.
 * The messages come from the output queue (`pollOutput`, locally) or from the parts the job-watch
 * stage saved to S3 (src/jobs/output-store.ts, on AWS).
 */
import type { AwsClients } from "../aws/clients.ts";
import { createDecoder } from "../codec/example.ts";
import type { Column, ColumnValue } from "../codec/schema.ts";
import { unframeRecords } from "../codec/tfrecord.ts";

import type { OutputMessage } from "../protocol/feed-messages.ts";
import { takeMessages } from "./queues.ts";
import { ROW_ID, ROW_ID_COLUMN } from "../protocol/feed-messages.ts";

export type OutputRow = Record<string, ColumnValue>;

export class OutputRows {
  readonly rows = new Map<bigint, OutputRow>();
  private readonly ended = new Map<string, number>();
  private readonly decoder;

  constructor(
    columns: readonly Column[],
    private readonly members: readonly string[],
  ) {
    this.decoder = createDecoder([...columns, ROW_ID_COLUMN]);
  }

  /** Takes one output message body. */
  accept(body: string): void {
    const message = JSON.parse(body) as OutputMessage;
    if (message.kind === "rows") {
      for (const record of unframeRecords(new Uint8Array(Buffer.from(message.data, "base64")))) {
        const row = this.decoder.decode(record);
        this.rows.set(row[ROW_ID] as bigint, row);
      }
    } else if (message.kind === "end-of-output") {
      this.ended.set(message.member, message.rows);
    }
  }

  /** Rows announced by the members whose end-of-output arrived. */
  get promised(): number {
    return [...this.ended.values()].reduce((a, b) => a + b, 0);
  }

  /** Members whose end-of-output has not arrived. */
  get unfinished(): string[] {
    return this.members.filter((m) => !this.ended.has(m));
  }

  /** Every member said it is done, and every row it reported has arrived. */
  get complete(): boolean {
    return this.unfinished.length === 0 && this.rows.size >= this.promised;
  }
}

/** Receives one batch from the output queue into `into` (long polling up to `waitSeconds`); returns how many messages it took. */
export function pollOutput(clients: AwsClients, queueUrl: string, into: OutputRows, waitSeconds = 1): Promise<number> {
  return takeMessages(clients, queueUrl, (messages) => messages.forEach((m) => into.accept(m.Body ?? "{}")), waitSeconds);
}
