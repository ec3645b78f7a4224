/**
 * Inference function figures, on the demo's digits classifier (trained here for a few epochs),
 * in both serving modes: `script` (the Python engine running demo/digits_model.py's `predict`)
 * and `signature` (the same model's serving signature as ONNX, run by ONNX Runtime in the
 * function's own process).
 *
 * - Cold start: a service that has never served (a new container) from the first row sent to its
 *   result: the engine's start and the model's load included.
 * - Throughput: messages of many rows, each SQS batch one engine call, against the same model in
 *   one process at the same batch size: TensorFlow's `predict` computation for script mode,
 *   an ONNX Runtime session in this Node process for signature mode.
 * - Latency of single-row messages (p50, p99 over 20 paced records), script mode.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { onnxRuntime } from "../functions/inference/onnx-engine.ts";
import { InferenceClient } from "../src/api/inference-client.ts";
import { rowToJson } from "../src/protocol/table-source.ts";
import { projectPython, projectRoot } from "../src/workers/paths.ts";
import type { LocalRuntime, ServedModel } from "../src/runtime/local-runtime.ts";
import { DIGITS_SCHEMA } from "../demo/digits-data.ts";
import { percentile, publishSavedModel } from "../test/helpers/models.ts";
import { digitsRows } from "./coding.ts";
import { ratioGoal, valueGoal, type BenchContext, type Measurement } from "./measurement.ts";

/** Rows per input message and messages per invocation (the event source's batch size): rows per engine call is their product. */
const ROWS_PER_MESSAGE = 500;
const MESSAGES_PER_BATCH = 10;
/** Handler calls at once, as a mapping's maximum concurrency: one per core here. */
const CONCURRENCY = 2;

const INPUT = DIGITS_SCHEMA.filter((c) => c.name === "pixels");
const OUTPUT = [
  { name: "digit", dtype: "INT64", shape: "scalar" },
  { name: "score", dtype: "FLOAT32", shape: "scalar" },
] as const;

/** Rows/s of `model.onnx` in this process at `rows` rows per session run: best of 3 passes of 20 runs, after a warm-up. */
async function onnxInProcess(file: string, rows: readonly (readonly number[])[]): Promise<number> {
  const ort = onnxRuntime();
  const session = await ort.InferenceSession.create(readFileSync(file));
  const data = new Float32Array(rows.length * 64);
  rows.forEach((r, i) => data.set(r, i * 64));
  const run = () => session.run({ pixels: new ort.Tensor("float32", data, [rows.length, 64]) });
  for (let i = 0; i < 5; i++) await run();
  let best = Infinity;
  for (let pass = 0; pass < 3; pass++) {
    const started = performance.now();
    for (let i = 0; i < 20; i++) await run();
    best = Math.min(best, performance.now() - started);
  }
  await session.release();
  return (20 * rows.length) / (best / 1000);
}

interface ModeRun {
  readonly coldStartMs: number;
  readonly rowsPerSec: number;
  readonly latencies: readonly number[];
  readonly stages: string;
}

/** Serves `modelId` on a new service and measures its cold start, then its throughput on `pixels`. */
async function measureMode(runtime: LocalRuntime, modelId: string, pixels: readonly Record<string, unknown>[], messages: number, latency: boolean): Promise<ModeRun> {
  const served: ServedModel = await runtime.serveModel(modelId, { recheckMs: 60_000, batchSize: MESSAGES_PER_BATCH, concurrency: CONCURRENCY });
  try {
    const client = new InferenceClient(runtime.deps.clients, served.inputQueueUrl, served.outputQueueUrl);
    const sentAt = await client.send("cold", pixels[0]!);
    const coldStartMs = (await client.result("cold", 120_000)).receivedAt - sentAt;
    const latencies: number[] = [];
    for (let i = 0; latency && i < 20; i++) {
      const at = await client.send(`l${i}`, pixels[i]!);
      latencies.push((await client.result(`l${i}`)).receivedAt - at);
      await new Promise((r) => setTimeout(r, Math.max(0, at + 200 - Date.now())));
    }
    const bodies = Array.from({ length: messages }, (_, m) => JSON.stringify({ v: 1, rows: pixels.slice(m * ROWS_PER_MESSAGE, (m + 1) * ROWS_PER_MESSAGE).map((row, i) => ({ id: `b${m * ROWS_PER_MESSAGE + i}`, row })) }));
    const started = Date.now();
    // One send per message: a few messages this size exceed SendMessageBatch's 1 MiB.
    await Promise.all(bodies.map((MessageBody) => runtime.deps.clients.sqs.send(new SendMessageCommand({ QueueUrl: served.inputQueueUrl, MessageBody }))));
    for (let i = 0; i < messages * ROWS_PER_MESSAGE; i++) await client.result(`b${i}`, 300_000);
    const rowsPerSec = (messages * ROWS_PER_MESSAGE) / ((Date.now() - started) / 1000);
    const stages = Object.entries(served.service.totals.stageMs)
      .map(([stage, ms]) => `${stage} ${(ms / 1000).toFixed(2)} s`)
      .join(", ");
    return { coldStartMs, rowsPerSec, latencies, stages };
  } finally {
    await served.stop();
  }
}

export async function benchInference(ctx: BenchContext, options: { messages?: number } = {}): Promise<Measurement[]> {
  const runtime = await ctx.runtime();
  const messages = options.messages ?? 40;
  const callRows = ROWS_PER_MESSAGE * MESSAGES_PER_BATCH;
  const root = mkdtempSync(join(tmpdir(), "stf-bench-digits-"));
  const dir = join(root, "model");
  const onnxFile = join(root, "model.onnx");
  const trained = spawnSync(projectPython, [join(projectRoot, "bench/scripts/digits_savedmodel.py"), dir, String(callRows), onnxFile], { encoding: "utf8", env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2" } });
  if (trained.status !== 0) throw new Error(`training the bench's digits model failed:\n${trained.stderr}`);
  const tfBaseline = JSON.parse(trained.stdout.trim().split("\n").at(-1)!) as { rowsPerSec: number; oneRowMs: number };
  const rows = digitsRows(messages * ROWS_PER_MESSAGE);
  const onnxRowsPerSec = await onnxInProcess(onnxFile, rows.slice(0, callRows).map((r) => r.pixels as number[]));
  const stamp = Date.now().toString(36);
  const serving = { script: join(projectRoot, "demo/digits_model.py"), entry: "predict", input: INPUT, output: OUTPUT };
  await publishSavedModel(runtime.deps.clients, runtime.bucket, `bench-script-${stamp}`, dir, serving);
  await publishSavedModel(runtime.deps.clients, runtime.bucket, `bench-signature-${stamp}`, dir, { ...serving, onnx: onnxFile });

  const pixels = rows.map((r) => JSON.parse(rowToJson({ pixels: r.pixels })) as Record<string, unknown>);
  const script = await measureMode(runtime, `bench-script-${stamp}`, pixels, messages, true);
  const signature = await measureMode(runtime, `bench-signature-${stamp}`, pixels, messages, false);
  const load = `${messages} messages of ${ROWS_PER_MESSAGE} rows, ${MESSAGES_PER_BATCH} messages per invocation (${callRows} rows per engine call), ${CONCURRENCY} invocations at once`;
  ctx.log(`inference, script mode: ${load}: ${script.rowsPerSec.toFixed(0)} rows/s; TensorFlow predict in-process at ${callRows} rows per call ${tfBaseline.rowsPerSec.toFixed(0)} rows/s; cold start ${script.coldStartMs} ms`);
  ctx.log(`inference, script mode, the function's time by stage over every batch: ${script.stages}`);
  ctx.log(`inference, signature mode: ${load}: ${signature.rowsPerSec.toFixed(0)} rows/s; ONNX Runtime in-process at ${callRows} rows per run ${onnxRowsPerSec.toFixed(0)} rows/s; cold start ${signature.coldStartMs} ms`);
  ctx.log(`inference, signature mode, the function's time by stage over every batch: ${signature.stages}`);
  const p50 = percentile(script.latencies, 50);
  const p99 = percentile(script.latencies, 99);
  ctx.log(`inference, single-row latency (script mode): p50 ${p50} ms, p99 ${p99} ms (1-row call in-process ${tfBaseline.oneRowMs.toFixed(2)} ms)`);
  const call = { name: "in-process 1-row predict", value: tfBaseline.oneRowMs };
  return [
    { name: "inference latency p50 per single-row message (queue -> queue)", value: p50, unit: "ms", baseline: call, higherIsBetter: false },
    { name: "inference latency p99 per single-row message (queue -> queue)", value: p99, unit: "ms", baseline: call, higherIsBetter: false, goal: valueGoal(100, "ms") },
    {
      name: "inference cold start, first row sent -> its result, signature mode",
      value: signature.coldStartMs,
      unit: "ms",
      baseline: { name: "script mode (Python engine start, TensorFlow import, model load)", value: script.coldStartMs },
      higherIsBetter: false,
      goal: valueGoal(1000, "ms"),
    },
    {
      name: `inference function throughput, script mode, ${ROWS_PER_MESSAGE}-row messages`,
      value: script.rowsPerSec,
      unit: "rows/s",
      baseline: { name: `same model's TensorFlow predict in-process, ${callRows} rows per call`, value: tfBaseline.rowsPerSec },
      goal: ratioGoal({ min: 0.5, stretch: 0.8 }),
    },
    {
      name: `inference function throughput, signature mode, ${ROWS_PER_MESSAGE}-row messages`,
      value: signature.rowsPerSec,
      unit: "rows/s",
      baseline: { name: `same model.onnx in ONNX Runtime in-process, ${callRows} rows per run`, value: onnxRowsPerSec },
      goal: ratioGoal({ min: 0.5, stretch: 0.8 }),
    },
  ];
}
