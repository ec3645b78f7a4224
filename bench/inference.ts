/**
 * Inference function figures, on the demo's digits classifier (trained here for a few epochs):
 * rows/s through the function with messages of many rows (each SQS batch one engine call) against
 * the same model's own `predict` computation in one process at the same batch size, and the
 * per-record send -> result latency of single-row messages (p50, p99 over 20 paced records).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { InferenceClient } from "../src/api/inference-client.ts";
import { rowToJson } from "../src/protocol/table-source.ts";
import { projectPython, projectRoot } from "../src/workers/paths.ts";
import { DIGITS_SCHEMA } from "../demo/digits-data.ts";
import { percentile, publishSavedModel } from "../test/helpers/models.ts";
import { digitsRows } from "./coding.ts";
import { ratioGoal, valueGoal, type BenchContext, type Measurement } from "./measurement.ts";

/** Rows per input message and messages per invocation (the event source's batch size): rows per engine call is their product. */
const ROWS_PER_MESSAGE = 100;
const MESSAGES_PER_BATCH = 10;

export async function benchInference(ctx: BenchContext, options: { messages?: number } = {}): Promise<Measurement[]> {
  const runtime = await ctx.runtime();
  const messages = options.messages ?? 200;
  const callRows = ROWS_PER_MESSAGE * MESSAGES_PER_BATCH;
  const dir = join(mkdtempSync(join(tmpdir(), "stf-bench-digits-")), "model");
  const trained = spawnSync(projectPython, [join(projectRoot, "bench/scripts/digits_savedmodel.py"), dir, String(callRows)], { encoding: "utf8", env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2" } });
  if (trained.status !== 0) throw new Error(`training the bench's digits model failed:\n${trained.stderr}`);
  const baseline = JSON.parse(trained.stdout.trim().split("\n").at(-1)!) as { rowsPerSec: number; oneRowMs: number };
  const modelId = `bench-${Date.now().toString(36)}`;
  await publishSavedModel(runtime.deps.clients, runtime.bucket, modelId, dir, {
    script: join(projectRoot, "demo/digits_model.py"),
    entry: "predict",
    input: DIGITS_SCHEMA.filter((c) => c.name === "pixels"),
    output: [{ name: "digit", dtype: "INT64", shape: "scalar" }, { name: "score", dtype: "FLOAT32", shape: "scalar" }],
  });

  const served = await runtime.serveModel(modelId, { recheckMs: 60_000, batchSize: MESSAGES_PER_BATCH });
  try {
    const client = new InferenceClient(runtime.deps.clients, served.inputQueueUrl, served.outputQueueUrl);
    const pixels = digitsRows(messages * ROWS_PER_MESSAGE).map((r) => JSON.parse(rowToJson({ pixels: r.pixels })) as Record<string, unknown>);
    await client.send("warm", pixels[0]!);
    await client.result("warm", 120_000);

    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const sentAt = await client.send(`l${i}`, pixels[i]!);
      latencies.push((await client.result(`l${i}`)).receivedAt - sentAt);
      await new Promise((r) => setTimeout(r, Math.max(0, sentAt + 200 - Date.now())));
    }

    const started = Date.now();
    const bodies = Array.from({ length: messages }, (_, m) => JSON.stringify({ v: 1, rows: pixels.slice(m * ROWS_PER_MESSAGE, (m + 1) * ROWS_PER_MESSAGE).map((row, i) => ({ id: `b${m * ROWS_PER_MESSAGE + i}`, row })) }));
    // One send per message: ten messages this size exceed SendMessageBatch's 1 MiB.
    await Promise.all(bodies.map((MessageBody) => runtime.deps.clients.sqs.send(new SendMessageCommand({ QueueUrl: served.inputQueueUrl, MessageBody }))));
    for (let i = 0; i < messages * ROWS_PER_MESSAGE; i++) await client.result(`b${i}`, 300_000);
    const rowsPerSec = (messages * ROWS_PER_MESSAGE) / ((Date.now() - started) / 1000);
    const stages = Object.entries(served.service.totals.stageMs).map(([stage, ms]) => `${stage} ${(ms / 1000).toFixed(2)} s`).join(", ");
    ctx.log(`inference: the function's time by stage, over every batch of the run (latency and warm-up included): ${stages}`);
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    ctx.log(
      `inference (digits classifier): ${messages} messages of ${ROWS_PER_MESSAGE} rows, ${MESSAGES_PER_BATCH} messages per invocation (${callRows} rows per engine call): ${rowsPerSec.toFixed(0)} rows/s; ` +
        `in-process predict at ${callRows} rows per call ${baseline.rowsPerSec.toFixed(0)} rows/s; single-row latency p50 ${p50} ms, p99 ${p99} ms (1-row call in-process ${baseline.oneRowMs.toFixed(2)} ms)`,
    );
    const call = { name: "in-process 1-row predict", value: baseline.oneRowMs };
    return [
      { name: "inference latency p50 per single-row message (queue -> queue)", value: p50, unit: "ms", baseline: call, higherIsBetter: false },
      { name: "inference latency p99 per single-row message (queue -> queue)", value: p99, unit: "ms", baseline: call, higherIsBetter: false, goal: valueGoal(100, "ms") },
      {
        name: `inference function throughput, ${ROWS_PER_MESSAGE}-row messages`,
        value: rowsPerSec,
        unit: "rows/s",
        baseline: { name: `same model's predict in-process, ${callRows} rows per call`, value: baseline.rowsPerSec },
        goal: ratioGoal({ min: 0.5, stretch: 0.8 }),
      },
    ];
  } finally {
    await served.stop();
  }
}
