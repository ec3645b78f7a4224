/**
 * Inference function figures: per-record send -> result latency through the input and output
 * queues (p50, p99 over 20 paced records), and rows/s through the function (500 rows sent in
 * batches of 10) against the same SavedModel called directly in-process at the same batch size.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { InferenceClient } from "../src/api/inference-client.ts";
import { projectPython, projectRoot } from "../src/workers/paths.ts";
import { percentile, publishScaleModel, saveScaleModels } from "../test/helpers/models.ts";
import { ratioGoal, valueGoal, type BenchContext, type Measurement } from "./measurement.ts";

export async function benchInference(ctx: BenchContext): Promise<Measurement[]> {
  const runtime = await ctx.runtime();
  const [dir] = saveScaleModels([2]);
  const modelId = `bench-${Date.now().toString(36)}`;
  await publishScaleModel(runtime.deps.clients, runtime.bucket, modelId, dir!);
  const direct = spawnSync(projectPython, [join(projectRoot, "bench/scripts/inference_direct.py"), dir!], { encoding: "utf8", env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2" } });
  if (direct.status !== 0) throw new Error(`the direct baseline failed:\n${direct.stderr}`);
  const baseline = JSON.parse(direct.stdout.trim().split("\n").at(-1)!) as { rowsPerSec: number; oneRowMs: number };

  const served = await runtime.serveModel(modelId, { recheckMs: 5_000 });
  try {
    const client = new InferenceClient(runtime.deps.clients, served.inputQueueUrl, served.outputQueueUrl);
    await client.send("warm", { x: 1 });
    await client.result("warm", 120_000);

    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const sentAt = await client.send(`l${i}`, { x: i });
      latencies.push((await client.result(`l${i}`)).receivedAt - sentAt);
      await new Promise((r) => setTimeout(r, Math.max(0, sentAt + 200 - Date.now())));
    }
    const total = 500;
    const started = Date.now();
    const sends: Promise<unknown>[] = [];
    for (let b = 0; b < total / 10; b++) {
      const entries = Array.from({ length: 10 }, (_, i) => ({ Id: String(i), MessageBody: JSON.stringify({ v: 1, id: `b${b * 10 + i}`, row: { x: i } }) }));
      sends.push(runtime.deps.clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: served.inputQueueUrl, Entries: entries })));
    }
    await Promise.all(sends);
    for (let i = 0; i < total; i++) await client.result(`b${i}`, 120_000);
    const rowsPerSec = total / ((Date.now() - started) / 1000);
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    ctx.log(`latency send -> result: p50 ${p50} ms, p99 ${p99} ms; function ${rowsPerSec.toFixed(0)} rows/s; direct ${baseline.rowsPerSec.toFixed(0)} rows/s, 1 row ${baseline.oneRowMs.toFixed(2)} ms`);
    const call = { name: "direct 1-row model call", value: baseline.oneRowMs };
    return [
      { name: "inference latency p50 per record (queue -> queue)", value: p50, unit: "ms", baseline: call, higherIsBetter: false },
      { name: "inference latency p99 per record (queue -> queue)", value: p99, unit: "ms", baseline: call, higherIsBetter: false, goal: valueGoal(100, "ms") },
      { name: "inference function throughput", value: rowsPerSec, unit: "rows/s", baseline: { name: "same model in-process, batches of 10", value: baseline.rowsPerSec }, goal: ratioGoal({ min: 0.5, stretch: 0.8 }) },
    ];
  } finally {
    await served.stop();
  }
}
