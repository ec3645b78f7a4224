/**
 * Load scenarios of the SQS inference function, shared by the fast integration tests (a few
 * hundred rows) and the soak suite (10,000): rows with ids go through input queue -> local event
 * source -> inference function -> output queue, and the output is compared with the input as sets.
 *
 * The harness (sending, draining, counting) uses clients without injected faults, so what is
 * measured is the system under test; faults, when on, are in the runtime's clients and in the
 * engine process, both configured from `SERVERLESS_TF_FAULT_RATE` before the runtime starts.
 */
import { readFileSync } from "node:fs";
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { awsSettingsFromEnv, createAwsClients, destroyAwsClients, type AwsClients } from "../../src/aws/clients.ts";
import { FAULT_KINDS, injectedFaults } from "../../src/aws/faults.ts";
import type { Column } from "../../src/codec/schema.ts";
import { InferenceClient } from "../../src/api/inference-client.ts";
import type { PythonEngine } from "../../functions/inference/engine.ts";
import type { ServingEngines } from "../../functions/inference/serving-engines.ts";
import type { RejectedMessage, ResultMessage, ResultsMessage } from "../../src/protocol/inference-messages.ts";
import type { ServiceTotals } from "../../src/runtime/functions.ts";
import { LocalRuntime, type ServedModel } from "../../src/runtime/local-runtime.ts";
import { publishScaleModel, saveScaleModels } from "./models.ts";
import { queueDepth } from "../../src/jobs/queues.ts";

/** Clients for the harness: the runtime's settings without the fault switch. */
export function cleanClients(): AwsClients {
  return createAwsClients(awsSettingsFromEnv({ ...process.env, SERVERLESS_TF_FAULT_RATE: "" }));
}

export const totalInjected = (): number => FAULT_KINDS.reduce((n, k) => n + injectedFaults[k], 0);

/** Resident set size of a process in MiB (Linux /proc), undefined where it cannot be read. */
export function rssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb ? Math.round(Number(kb) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

export interface Served {
  readonly runtime: LocalRuntime;
  readonly served: ServedModel;
  readonly clients: AwsClients;
  readonly enginePid: () => number | undefined;
  close(): Promise<void>;
}

/** Starts a runtime (faults per the environment), publishes the scale model and serves it. */
export async function serveScaleModel(options: {
  readonly modelId: string;
  readonly concurrency: number;
  readonly visibilityTimeoutSeconds: number;
  readonly maxReceiveCount?: number;
  readonly extraInputs?: readonly Column[];
  /** A FIFO output queue (default), whose deduplication ids hide an SDK retry's second send; false: a standard one, as the stack ships. */
  readonly fifoOutput?: boolean;
  /** Serve one row before returning (default), so the engine's start is in no figure; false: the first batch meets a cold engine. */
  readonly warm?: boolean;
}): Promise<Served> {
  const runtime = await LocalRuntime.start();
  const clients = cleanClients();
  const [dir] = saveScaleModels([1]);
  await publishScaleModel(clients, runtime.bucket, options.modelId, dir!, undefined, options.extraInputs);
  const served = await runtime.serveModel(options.modelId, {
    recheckMs: 60_000,
    concurrency: options.concurrency,
    visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
    maxReceiveCount: options.maxReceiveCount ?? 10,
    fifoOutput: options.fifoOutput ?? true,
  });
  const engines = served.service.engine as ServingEngines;
  if (options.warm ?? true) {
    // One row first: the engine's TensorFlow import and model load are not part of any figure.
    const warm = new InferenceClient(clients, served.inputQueueUrl, served.outputQueueUrl);
    await warm.send("warm-up", { x: 0, ...(options.extraInputs?.length ? { blob: new Uint8Array([65]), tag: "w" } : {}) });
    await warm.result("warm-up", 120_000);
  }
  return {
    runtime,
    served,
    clients,
    enginePid: () => (engines.engine("script") as PythonEngine | undefined)?.pid,
    close: async () => {
      await served.stop();
      await runtime.close();
      destroyAwsClients(clients);
    },
  };
}

/** Sends bodies 10 per batch, `parallel` batches at once; returns the SQS message id of each body, in order. */
export async function sendBodies(clients: AwsClients, queueUrl: string, bodies: readonly string[], parallel = 8, window = 200): Promise<string[]> {
  const ids: string[] = new Array<string>(bodies.length);
  const chunks = Array.from({ length: Math.ceil(bodies.length / 10) }, (_, i) => i * 10);
  let next = 0;
  // Keep at most about `window` messages waiting: moto recomputes a queue's attributes (a scan of
  // every message) for each message it receives or sends, so a receive costs the square of the
  // backlog and 10,000 waiting slows it to under a row per second (real SQS does not care).
  // Traffic arrives over time, as it would from producers.
  const backlog = async () => {
    while ((await queueDepth(clients, queueUrl)).visible > window) await new Promise((r) => setTimeout(r, 200));
  };
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < chunks.length) {
        const start = chunks[next++]!;
        if ((start / 10) % 2 === 0) await backlog();
        const slice = bodies.slice(start, start + 10);
        const out = await clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: slice.map((b, i) => ({ Id: String(i), MessageBody: b })) }));
        if (out.Failed?.length) throw new Error(`sending input failed: ${JSON.stringify(out.Failed)}`);
        for (const s of out.Successful ?? []) ids[start + Number(s.Id)] = s.MessageId!;
      }
    }),
  );
  return ids;
}

/**
 * Drains a queue with `parallel` receivers, passing each body and its SQS message id to `onBody`,
 * until `enough()` has held for `settleMs` (late duplicates have time to show) or `timeoutMs`
 * passed. A message can reach two receivers (moto's receive is not atomic across threads, and
 * SQS is at-least-once): a copy sent twice has two message ids, a message received twice one.
 *
 * With `holdSeconds`, a message is taken only once it has been in the queue that long; a younger
 * one is left invisible for the rest of that time and taken when it comes back.
 */
export async function drain(clients: AwsClients, queueUrl: string, onBody: (body: string, messageId: string) => void, enough: () => boolean, options: { settleMs: number; timeoutMs: number; parallel?: number; holdSeconds?: number }): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const holdMs = (options.holdSeconds ?? 0) * 1000;
  let enoughSince: number | undefined;
  await Promise.all(
    Array.from({ length: options.parallel ?? 4 }, async () => {
      for (;;) {
        const now = Date.now();
        if (enough()) enoughSince ??= now;
        if (now > deadline || (enoughSince !== undefined && now - enoughSince >= options.settleMs)) return;
        const { Messages = [] } = await clients.sqs.send(
          new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, ...(holdMs ? { VisibilityTimeout: options.holdSeconds, MessageSystemAttributeNames: ["SentTimestamp"] } : {}) }),
        );
        const taken = Messages.filter((m) => !holdMs || Date.now() - Number(m.Attributes?.SentTimestamp) >= holdMs);
        for (const m of taken) onBody(m.Body ?? "", m.MessageId ?? "");
        if (taken.length) await clients.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: taken.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
      }
    }),
  );
}

/** Resolves when `done()` holds and the queue has nothing visible or in flight; false on timeout. */
export async function untilHandled(clients: AwsClients, queueUrl: string, done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (done()) {
      const depth = await queueDepth(clients, queueUrl);
      if (depth.visible === 0 && depth.inFlight === 0) return true;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

export interface ExactlyOnceFigures {
  readonly rowsIn: number;
  readonly rowsOut: number;
  readonly resultsReceived: number;
  /** Extra output messages (distinct SQS message ids) for a row id already answered. */
  readonly duplicates: number;
  readonly lost: number;
  /** Results whose id was never sent, or whose value is not 1 * x. */
  readonly wrong: number;
  readonly dlq: number;
  readonly seconds: number;
  readonly rowsPerSecond: number;
  readonly service: ServiceTotals;
  readonly injectedFaults: number;
  readonly inputLeft: { visible: number; inFlight: number };
}

/**
 * The output is read while the function serves, but each result only once it has been in the
 * queue for {@link DEDUPE_HOLD_SECONDS}: moto drops a repeated FIFO deduplication id only while the
 * first copy is still in the queue (moto/sqs/models.py `add_message`), where SQS drops it for 5
 * minutes whether or not the first copy was deleted. The function's only resend of a served row is
 * an SDK retry within its retry budget (seconds), so holding each copy that long gives moto SQS's
 * behaviour where it matters, and keeps the output queue short (moto's cost per message grows with
 * the queue's length).
 *
 * Sends `rows` rows `{v:1, id:"<prefix><i>", row:{x:i}}` (prefix default `r-`; ids are served once
 * per model, so a second run needs another prefix), or `rowsPerMessage` of them to a message
 * (`{v:1, rows:[...]}`), while the model serves them, and compares id sets. Throughput counts from the first send until every row is answered and the input queue is
 * empty.
 */
export async function runExactlyOnce(s: Served, rows: number, options: { timeoutMs: number; settleMs: number; prefix?: string; rowsPerMessage?: number }): Promise<ExactlyOnceFigures> {
  const prefix = options.prefix ?? "r-";
  const ids = Array.from({ length: rows }, (_, i) => `${prefix}${i}`);
  const seen = new Map<string, Set<string>>();
  let received = 0;
  let wrong = 0;
  let handled = false;
  const injectedBefore = totalInjected();
  const startedAt = Date.now();
  const before = s.served.service.totals.results;
  const output = drain(
    s.clients,
    s.served.outputQueueUrl,
    (body, messageId) => {
      const message = JSON.parse(body) as ResultMessage | ResultsMessage;
      for (const result of message.kind === "results" ? message.rows : [message]) {
        received += 1;
        const i = Number(result.id.slice(prefix.length));
        if (!result.id.startsWith(prefix) || result.row.y !== i) wrong += 1;
        seen.set(result.id, (seen.get(result.id) ?? new Set()).add(messageId));
      }
    },
    () => handled && seen.size >= rows,
    { settleMs: options.settleMs, timeoutMs: options.timeoutMs + 60_000 + rows * 10, holdSeconds: DEDUPE_HOLD_SECONDS },
  );
  const per = options.rowsPerMessage ?? 1;
  const bodies =
    per === 1
      ? ids.map((id, i) => JSON.stringify({ v: 1, id, row: { x: i } }))
      : Array.from({ length: Math.ceil(rows / per) }, (_, m) => JSON.stringify({ v: 1, rows: ids.slice(m * per, (m + 1) * per).map((id, k) => ({ id, row: { x: m * per + k } })) }));
  await sendBodies(s.clients, s.served.inputQueueUrl, bodies);
  await untilHandled(s.clients, s.served.inputQueueUrl, () => s.served.service.totals.results - before >= rows, options.timeoutMs);
  const seconds = (Date.now() - startedAt) / 1000;
  handled = true;
  await output;
  const dlq: RejectedMessage[] = [];
  await drain(s.clients, s.served.dlqUrl, (b) => void dlq.push(JSON.parse(b) as RejectedMessage), () => true, { settleMs: 1_000, timeoutMs: 5_000, parallel: 1 });
  const duplicates = [...seen.values()].reduce((n, c) => n + c.size - 1, 0);
  return {
    rowsIn: rows,
    rowsOut: seen.size,
    resultsReceived: received,
    duplicates,
    lost: ids.filter((id) => !seen.has(id)).length,
    wrong,
    dlq: dlq.length,
    seconds,
    rowsPerSecond: Math.round(seen.size / Math.max(seconds, 0.001)),
    service: { ...s.served.service.totals },
    injectedFaults: totalInjected() - injectedBefore,
    inputLeft: await queueDepth(s.clients, s.served.inputQueueUrl),
  };
}

/** How long a result stays in the output queue before the harness takes it (see {@link runExactlyOnce}). */
export const DEDUPE_HOLD_SECONDS = 10;

/** The input columns of the poison scenario besides `x`: a BYTES and a STRING column, so base64 and UTF-8 are checked too. */
export const POISON_EXTRA_INPUTS: readonly Column[] = [
  { name: "blob", dtype: "BYTES", shape: "scalar" },
  { name: "tag", dtype: "STRING", shape: "scalar" },
];

export const POISON_KINDS = ["wrong-type", "missing-column", "oversized", "invalid-base64", "truncated-base64", "invalid-utf8", "nested-json", "not-json", "bad-id", "nested-body"] as const;
export type PoisonKind = (typeof POISON_KINDS)[number];

/** A malformed input body of `kind` (`i` makes its id unique). Each is one a producer could really send. */
export function poisonBody(kind: PoisonKind, i: number): string {
  const id = `bad-${i}`;
  const ok = { x: 1, blob: "QUJD", tag: "ok" };
  const row = (r: Record<string, unknown>) => JSON.stringify({ v: 1, id, row: r });
  switch (kind) {
    case "wrong-type":
      return row({ ...ok, x: "abc" });
    case "missing-column":
      return row({ blob: ok.blob, tag: ok.tag });
    case "oversized": // near SQS's 256 KiB limit: a 120 KB string where a float belongs
      return row({ ...ok, x: "9".repeat(120_000) });
    case "invalid-base64":
      return row({ ...ok, blob: "@@not-base64@@" });
    case "truncated-base64":
      return row({ ...ok, blob: "QUJDRA" });
    case "invalid-utf8": // a lone surrogate: JSON can spell it, UTF-8 cannot encode it
      return `{"v":1,"id":"${id}","row":{"x":1,"blob":"QUJD","tag":"ab\\ud800cd"}}`;
    case "nested-json":
      return `{"v":1,"id":"${id}","row":{"x":${"[".repeat(5_000)}1${"]".repeat(5_000)},"blob":"QUJD","tag":"ok"}}`;
    case "not-json":
      return `{"v":1,"id":"${id}","row":{"x":1,"blob":"QU`;
    case "bad-id":
      return JSON.stringify({ v: 1, id: `${id} has spaces`, row: ok });
    case "nested-body":
      return `${"[".repeat(50_000)}${"]".repeat(50_000)}`;
  }
}

export interface PoisonFigures {
  readonly good: number;
  readonly bad: number;
  readonly goodOut: number;
  readonly goodLost: number;
  readonly goodDuplicates: number;
  readonly goodInDlq: number;
  /** Bad messages with a dead letter (by SQS message id), and those without one. */
  readonly badInDlq: number;
  readonly badMissing: number;
  readonly dlqDuplicates: number;
  /** Dead letters whose reason lacks error, column, expected or received. */
  readonly unreadableReasons: number;
  readonly dlqByReason: Record<string, number>;
  readonly byKind: Record<string, number>;
  readonly retried: number;
  readonly enginePid: { before: number | undefined; after: number | undefined };
  readonly engineRssMiB: { before: number | undefined; after: number | undefined };
  readonly seconds: number;
}

/** Sends `bad` malformed rows (cycling through {@link POISON_KINDS}) mixed with `good` good ones, and accounts for every one. */
export async function runPoison(s: Served, good: number, bad: number, options: { timeoutMs: number }): Promise<PoisonFigures> {
  const pidBefore = s.enginePid();
  const rssBefore = rssMiB(pidBefore);
  const retriedBefore = s.served.service.totals.retried;
  const started = Date.now();
  const bodies: { body: string; kind: PoisonKind | "good"; id: string }[] = [];
  for (let i = 0, g = 0, b = 0; g < good || b < bad; i++) {
    // one bad row in every (bad / good) ratio, spread through the stream
    if (b < bad && (g >= good || b * good <= g * bad)) {
      const kind = POISON_KINDS[b % POISON_KINDS.length]!;
      bodies.push({ body: poisonBody(kind, b), kind, id: `bad-${b}` });
      b++;
    } else {
      bodies.push({ body: JSON.stringify({ v: 1, id: `g-${g}`, row: { x: g, blob: "QUJD", tag: `t${g}` } }), kind: "good", id: `g-${g}` });
      g++;
    }
  }
  // Dead letters are read while the run goes on: moto's send and receive cost grows with the
  // queue's length (its attributes are recomputed per message), so a 10,000-letter DLQ read
  // afterwards takes most of the run. The DLQ is a standard queue: reading early changes nothing
  // but the time.
  const letters = new Map<string, RejectedMessage>();
  // By the DLQ's own message ids: a letter that reached both receivers is one letter (see drain);
  // a duplicate is a second letter for the same input message.
  const letterIds = new Map<string, Set<string>>();
  let handledAt: number | undefined;
  // Once the input is handled, every letter is on the DLQ: a missing one fails the count after a grace, not a hang.
  const lettersIn = () => handledAt !== undefined && (letters.size >= bad || Date.now() - handledAt > Math.max(60_000, bad * 20));
  const deadLetters = drain(s.clients, s.served.dlqUrl, (b, dlqMessageId) => {
    const r = JSON.parse(b) as RejectedMessage;
    letterIds.set(r.messageId, (letterIds.get(r.messageId) ?? new Set()).add(dlqMessageId));
    if (!letters.has(r.messageId)) letters.set(r.messageId, r);
  }, lettersIn, { settleMs: 1_000, timeoutMs: options.timeoutMs + Math.max(60_000, bad * 200), parallel: 2 });
  const messageIds = await sendBodies(s.clients, s.served.inputQueueUrl, bodies.map((b) => b.body), 4);
  const kindOf = new Map(messageIds.map((m, i) => [m, bodies[i]!.kind]));
  // Done when the input queue holds nothing visible or in flight: every message was answered,
  // rejected to the DLQ or dropped; what went where is counted from the queues below. (Counting
  // handled rows instead never finished: a body rejected before it parses into a row is no row.)
  await untilHandled(s.clients, s.served.inputQueueUrl, () => true, options.timeoutMs);
  handledAt = Date.now();
  const seconds = (Date.now() - started) / 1000;
  const seen = new Map<string, Set<string>>();
  await drain(s.clients, s.served.outputQueueUrl, (b, messageId) => {
    const id = (JSON.parse(b) as ResultMessage).id;
    seen.set(id, (seen.get(id) ?? new Set()).add(messageId));
  }, () => seen.size >= good, { settleMs: 1_000, timeoutMs: Math.max(60_000, good * 100) });
  await deadLetters;
  let unreadable = 0;
  const dlqByReason: Record<string, number> = {};
  const byKind: Record<string, number> = {};
  for (const r of letters.values()) {
    const { error, column, expected, received } = r.reason ?? {};
    if (!error || !column || !expected || received === undefined) unreadable++;
    const key = `${error}:${column}`;
    dlqByReason[key] = (dlqByReason[key] ?? 0) + 1;
    const kind = kindOf.get(r.messageId) ?? "unknown";
    byKind[kind] = (byKind[kind] ?? 0) + 1;
  }
  const goodIds = bodies.filter((b) => b.kind === "good").map((b) => b.id);
  const pidAfter = s.enginePid();
  return {
    good,
    bad,
    goodOut: goodIds.filter((id) => seen.has(id)).length,
    goodLost: goodIds.filter((id) => !seen.has(id)).length,
    goodDuplicates: [...seen.values()].reduce((n, c) => n + c.size - 1, 0),
    goodInDlq: byKind.good ?? 0,
    badInDlq: [...letters.keys()].filter((m) => kindOf.get(m) !== "good").length,
    badMissing: messageIds.filter((m) => kindOf.get(m) !== "good" && !letters.has(m)).length,
    dlqDuplicates: [...letterIds.values()].reduce((n, ids) => n + ids.size - 1, 0),
    unreadableReasons: unreadable,
    dlqByReason,
    byKind,
    retried: s.served.service.totals.retried - retriedBefore,
    enginePid: { before: pidBefore, after: pidAfter },
    engineRssMiB: { before: rssBefore, after: rssMiB(pidAfter) },
    seconds,
  };
}
