/**
 * The stream feed: forwards the rows of an unbounded table (an SQS queue of row messages, the
 * inference input shape `{"v":1,"id":...,"row":{...}}`) to a streaming job's feed queue,
 * encoded and packed as feed `rows` messages, as each SQS batch arrives.
 *
 * Why a forwarder and not workers reading the source queue: the source holds user JSON rows,
 * which must be validated against the schema (a bad row goes to the job's DLQ with its reason,
 * not into a tensor) and encoded once; the worker then reads the same feed protocol as a bounded
 * job, dedupe by feedId included, and the source queue can be any producer's queue.
 */
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { createEncoder } from "../../src/codec/example.ts";
import { frameRecords, packRecords } from "../../src/codec/tfrecord.ts";
import type { Deps } from "../../src/jobs/deps.ts";
import { dataMembers, type JobSpec } from "../../src/protocol/spec.ts";
import { parseInputRow, rejection, type RejectedMessage } from "../../src/protocol/inference-messages.ts";
import { feedId, rowsEnvelopeBytes, type RowsMessage } from "../../src/protocol/feed-messages.ts";
import { rowFromJson } from "../../src/codec/table-rows.ts";
import { SQS_MAX_MESSAGE_BYTES, sendBatches } from "../../src/protocol/limits.ts";
import type { FunctionFactories, SqsHandler } from "../../src/runtime/functions.ts";

export const STREAM_SHARD = "stream";

/** A handler for one streaming job's source queue; `seq` numbers its feed messages. */
export function createStreamFeedHandler(deps: Deps, spec: JobSpec, log: (line: string) => void = (line) => console.error(line)): SqsHandler {
  const encoder = createEncoder(spec.input.columns);
  const member = dataMembers(spec.cluster)[0]!;
  let seq = 0;
  return async (event) => {
    const rejected: RejectedMessage[] = [];
    const good: { messageId: string; record: Uint8Array }[] = [];
    for (const record of event.Records) {
      try {
        const row = rowFromJson(parseInputRow(record.body).row, spec.input.columns, good.length);
        good.push({ messageId: record.messageId, record: encoder.encode(row, good.length) });
      } catch (e) {
        rejected.push(rejection(record, e));
      }
    }
    const failed = new Set<string>();
    const groups = packRecords(
      good.map((g) => g.record),
      { maxBodyBytes: SQS_MAX_MESSAGE_BYTES, envelopeBytes: rowsEnvelopeBytes(spec.jobId, `${STREAM_SHARD}-${good[0]?.messageId ?? ""}`, member) },
    );
    let offset = 0;
    const entries = groups.map((group, k) => {
      const first = good[offset]!;
      const ids = good.slice(offset, offset + group.length).map((g) => g.messageId);
      offset += group.length;
      // The first source message id names the group: a redelivered batch that regroups the same
      // rows differently gets new feed ids; that rare duplicate is one extra training step.
      const shard = `${STREAM_SHARD}-${first.messageId}`;
      const message: RowsMessage = { v: 1, kind: "rows", job: spec.jobId, shard, seq: seq++, member, count: group.length, data: Buffer.from(frameRecords(group)).toString("base64") };
      return { ids, entry: { MessageBody: JSON.stringify(message), MessageAttributes: { feedId: { DataType: "String", StringValue: feedId(shard, k, member) } } } };
    });
    const send = async (queueUrl: string, items: { ids: string[]; entry: { MessageBody: string; MessageAttributes?: Record<string, { DataType: string; StringValue: string }> } }[]) => {
      // Each body may be near 1 MiB on its own (packRecords fills messages to the limit).
      const bytesOf = (c: (typeof items)[number]) => Buffer.byteLength(c.entry.MessageBody) + Object.entries(c.entry.MessageAttributes ?? {}).reduce((n, [k, v]) => n + k.length + v.DataType.length + Buffer.byteLength(v.StringValue), 0);
      for (const chunk of sendBatches(items, bytesOf)) {
        try {
          const out = await deps.clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: chunk.map((c, j) => ({ Id: String(j), ...c.entry })) }));
          for (const f of out.Failed ?? []) chunk[Number(f.Id)]!.ids.forEach((id) => failed.add(id));
        } catch (e) {
          log(`[stream-feed ${spec.jobId}] sending to ${queueUrl} failed: ${(e as Error).message}`);
          chunk.forEach((c) => c.ids.forEach((id) => failed.add(id)));
        }
      }
    };
    await Promise.all([
      send(spec.queues.feed[member]!, entries),
      send(spec.queues.dlq, rejected.map((r) => ({ ids: [r.messageId], entry: { MessageBody: JSON.stringify(r) } }))),
    ]);
    return { batchItemFailures: [...failed].map((itemIdentifier) => ({ itemIdentifier })) };
  };
}

// The local runtime builds this function through this factory (src/runtime/functions.ts).
createStreamFeedHandler satisfies FunctionFactories["stream-feed"]["createStreamFeedHandler"];
