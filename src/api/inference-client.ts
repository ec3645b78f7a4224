/**
 * A small client of a served model's queues: sends input rows and waits for their results
 * by row id. What a caller of the inference function writes; the demo, bench and tests use it.
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import type { AwsClients } from "../aws/clients.ts";
import { ServerlessTfError } from "../errors.ts";
import { rowToJsonValues } from "../protocol/table-source.ts";
import type { Row } from "../codec/schema.ts";
import type { InputRowMessage, InputRowsMessage, RejectedMessage, ResultMessage, ResultsMessage } from "../protocol/inference-messages.ts";

/**
 * No result for a row arrived on the output queue in time.
 *
 * @example
 * try {
 *   await client.result("row-1", 5_000);
 * } catch (e) {
 *   if (e instanceof ResultTimeoutError) console.error(`${e.message}: is the model served, and its engine started?`);
 *   else throw e;
 * }
 */
export class ResultTimeoutError extends ServerlessTfError {}

/**
 * Sends rows to a served model's input queue and waits for their results by row id.
 *
 * @example
 * const served = await runtime.serveModel("digits");
 * const client = new InferenceClient(runtime.deps.clients, served.inputQueueUrl, served.outputQueueUrl);
 * await client.send("row-1", { pixels });
 * const { row, version } = await client.result("row-1"); // row.digit, from model version `version`
 */
export class InferenceClient {
  /** Results received and not yet taken, by row id. */
  private readonly results = new Map<string, ResultMessage & { receivedAt: number }>();
  private polling: Promise<void> | undefined;

  constructor(
    private readonly clients: AwsClients,
    readonly inputQueueUrl: string,
    readonly outputQueueUrl: string,
  ) {}

  /** Sends one row; resolves with the time it was sent (ms since epoch). */
  async send(id: string, row: Row): Promise<number> {
    const body: InputRowMessage = { v: 1, id, row: rowToJsonValues(row) };
    const sentAt = Date.now();
    await this.clients.sqs.send(new SendMessageCommand({ QueueUrl: this.inputQueueUrl, MessageBody: JSON.stringify(body) }));
    return sentAt;
  }

  /**
   * Sends many rows as one message (`{"v":1,"rows":[...]}`): the function runs them with the rest
   * of its SQS batch in one model call and answers with one `results` message. Resolves with the
   * time it was sent.
   *
   * @example
   * await client.sendRows(rows.map((row, i) => ({ id: `r-${i}`, row })));
   */
  async sendRows(rows: readonly { readonly id: string; readonly row: Row }[]): Promise<number> {
    const body: InputRowsMessage = { v: 1, rows: rows.map((r) => ({ id: r.id, row: rowToJsonValues(r.row) })) };
    const sentAt = Date.now();
    await this.clients.sqs.send(new SendMessageCommand({ QueueUrl: this.inputQueueUrl, MessageBody: JSON.stringify(body) }));
    return sentAt;
  }

  /** Waits for the result of row `id` (results of other rows are kept for their callers). */
  async result(id: string, timeoutMs = 30_000): Promise<ResultMessage & { receivedAt: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.results.get(id);
      if (found) {
        this.results.delete(id);
        return found;
      }
      if (Date.now() > deadline) throw new ResultTimeoutError(`no result for row ${id} on ${this.outputQueueUrl} within ${timeoutMs} ms`);
      await (this.polling ??= this.poll().then(() => undefined).finally(() => (this.polling = undefined)));
    }
  }

  /** Everything received so far and not taken (drains the map). */
  take(): (ResultMessage & { receivedAt: number })[] {
    const all = [...this.results.values()];
    this.results.clear();
    return all;
  }

  /** One receive (long poll up to `waitSeconds`); returns how many results arrived. */
  async poll(waitSeconds = 1): Promise<number> {
    const { Messages = [] } = await this.clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: this.outputQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: waitSeconds }));
    const receivedAt = Date.now();
    for (const m of Messages) {
      const body = JSON.parse(m.Body ?? "{}") as ResultMessage | ResultsMessage;
      if (body.kind === "result") this.results.set(body.id, { ...body, receivedAt });
      // A message of many rows answers each of them: one result per row id, as for single rows.
      if (body.kind === "results") for (const r of body.rows) this.results.set(r.id, { v: 1, kind: "result", id: r.id, modelId: body.modelId, version: body.version, row: r.row, receivedAt });
    }
    if (Messages.length) {
      await this.clients.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: this.outputQueueUrl, Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
    }
    return Messages.length;
  }
}

/** Reads up to `max` dead letters (rejected rows) from a DLQ, deleting them. */
export async function receiveRejected(clients: AwsClients, dlqUrl: string, max: number, timeoutMs = 10_000): Promise<RejectedMessage[]> {
  const out: RejectedMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < max && Date.now() < deadline) {
    const { Messages = [] } = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: dlqUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    for (const m of Messages) out.push(JSON.parse(m.Body ?? "{}") as RejectedMessage);
    if (Messages.length) await clients.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: dlqUrl, Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
  }
  return out;
}
