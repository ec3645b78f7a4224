/**
 * Feed throughput: rows/s from S3 JSON Lines objects through shard-feed and SQS into a real
 * worker's tf.data pipeline, against tf.data reading the same examples from a local TFRecord
 * file. The shards are dispatched only once the worker's entry runs, so TensorFlow's start-up
 * is not counted: the clock runs from dispatch to the end of the worker's pass over its data.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEncoder } from "../src/codec/example.ts";
import { frameRecords } from "../src/codec/tfrecord.ts";

import { runJob } from "../src/runtime/run-job.ts";
import { resetShardFeedStages, shardFeedStageMs } from "../functions/shard-feed/feed-shard.ts";
import { rowToJson } from "../src/protocol/table-source.ts";
import { projectPython, projectRoot } from "../src/workers/paths.ts";
import { putObject } from "../src/storage/objects.ts";
import { DIGITS_SCHEMA } from "../demo/digits-data.ts";
import { digitsRows } from "./coding.ts";
import { ratioGoal, type BenchContext, type Measurement } from "./measurement.ts";
import { availableParallelism } from "node:os";
import { cpuBetween, cpuSnapshot, type CpuSnapshot } from "./process-cpu.ts";


// The tuned baseline: batched parsing mapped in parallel and prefetched, best of 3 passes.
const TF_DATA = String.raw`
import sys, time, tensorflow as tf
path, batch = sys.argv[1], int(sys.argv[2])
spec = {"pixels": tf.io.FixedLenFeature([64], tf.float32), "label": tf.io.FixedLenFeature([], tf.int64)}
ds = tf.data.TFRecordDataset(path).batch(batch).map(lambda s: tf.io.parse_example(s, spec), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
for _ in ds.take(2): pass  # warm up
best = None
for _ in range(3):
    t0 = time.perf_counter(); rows = 0
    for b in ds: rows += int(tf.shape(b["label"])[0])
    seconds = time.perf_counter() - t0
    best = seconds if best is None else min(best, seconds)
print(rows, best)
`;

/** Rows and seconds of the tuned tf.data pass over a TFRecord stream written to a local file. */
function tfDataFromFile(tfRecord: Uint8Array, batchSize: number): { rows: number; seconds: number } {
  const dir = mkdtempSync(join(tmpdir(), "stf-bench-feed-"));
  try {
    writeFileSync(join(dir, "digits.tfrecord"), tfRecord);
    const py = spawnSync(projectPython, ["-c", TF_DATA, join(dir, "digits.tfrecord"), String(batchSize)], { cwd: projectRoot, encoding: "utf8", env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "3" } });
    if (py.status !== 0) throw new Error(`the tf.data baseline failed: ${py.stderr.slice(-2000)}`);
    const [n, seconds] = py.stdout.trim().split(/\s+/).map(Number) as [number, number];
    return { rows: n, seconds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchFeed(ctx: BenchContext, options: { rows?: number; objects?: number; batchSize?: number } = {}): Promise<Measurement[]> {
  const total = options.rows ?? 20_000;
  const objects = options.objects ?? 4;
  const batchSize = options.batchSize ?? 64;
  const rows = digitsRows(total);
  const runtime = await ctx.runtime();

  // Baseline: the same examples from a local TFRecord file, measured before and after the chain
  // (best of both): a slow spell of this machine during one of them does not flatter the ratio.
  const encoder = createEncoder(DIGITS_SCHEMA);
  const tfRecord = frameRecords(rows.map((r, i) => encoder.encode(r, i)));
  const before = tfDataFromFile(tfRecord, batchSize);

  // Through the stages: JSON Lines objects in S3, one shard-feed per object, one worker.
  const prefix = `bench/feed-${Date.now()}/`;
  const per = Math.ceil(total / objects);
  for (let i = 0; i < objects; i++) {
    const body = rows.slice(i * per, (i + 1) * per).map(rowToJson).join("\n") + "\n";
    await putObject(runtime.deps.clients, { bucket: runtime.bucket, key: `${prefix}part-${i}.jsonl` }, body);
  }
  let ready!: () => void;
  const workerReady = new Promise<void>((resolve) => (ready = resolve));
  let dispatchedAt = 0;
  let cpuAtDispatch: CpuSnapshot | undefined;
  let cpuAtEnd: CpuSnapshot | undefined;
  let consumed: { rows: number; seconds: number; at: number; spool?: Record<string, number>; tfData?: number } | undefined;
  resetShardFeedStages();
  const gated = runtime.interceptingShards(async (event, dispatch) => {
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the bench worker did not start within 120 s")), 120_000).unref());
    await Promise.race([workerReady, timeout]);
    cpuAtDispatch ??= cpuSnapshot();
    dispatchedAt ||= Date.now();
    await dispatch(event);
  });
  await runJob(
    gated,
    {
      mode: "train",
      cluster: { worker: 1, ps: 0 },
      python: { scripts: [join(projectRoot, "bench", "scripts", "feed_rate.py")], entry: "train", hyperParams: {}, env: {} },
      input: { columns: DIGITS_SCHEMA },
      output: null,
      batchSize,
      remainder: { policy: "pad" },
      source: { kind: "s3", uri: `s3://${runtime.bucket}/${prefix}` },
      bucket: runtime.bucket,
      model: null,
    },
    {
      timeoutMs: 10 * 60_000,
      onProgress: (p) => {
        if (p.kind === "ready") ready();
        if (p.kind === "consumed") cpuAtEnd = cpuSnapshot();
        if (p.kind === "consumed") consumed = { rows: p.rows as number, seconds: p.seconds as number, at: Date.now(), spool: p.spool as Record<string, number>, tfData: p.tf_data as number };
      },
    },
  );
  if (!consumed || consumed.rows < total) throw new Error(`the bench worker reported ${consumed?.rows ?? "no"} rows, expected ${total}`);
  const after = tfDataFromFile(tfRecord, batchSize);
  const local = before.seconds <= after.seconds ? before : after;
  ctx.log(`feed baseline: tf.data from a local file ${before.seconds.toFixed(3)} s before the chain, ${after.seconds.toFixed(3)} s after it (the faster counts)`);
  const seconds = (consumed.at - dispatchedAt) / 1000;
  // Where the time goes: the shard-feeds' stages (they overlap the worker's), the worker's spooling stages, its tf.data pass.
  const sf = shardFeedStageMs;
  const ms = (v: number) => `${Math.round(v)} ms`;
  ctx.log(`feed stages, shard-feed (${sf.rows} rows, summed over shards): read+parse ${ms(sf.read)}, encode ${ms(sf.encode)}, pack+base64 ${ms(sf.pack)}, send ${ms(sf.send)}, registry ${ms(sf.record)}`);
  const spool = consumed.spool ?? {};
  ctx.log(
    `feed stages, worker: spooling ${ms((spool.wall ?? 0) * 1000)} of wall time, in which receive+decode ${ms((spool.receive ?? 0) * 1000)} overlaps spool parts to S3 ${ms((spool.parts ?? 0) * 1000)} and delete ${ms((spool.delete ?? 0) * 1000)}; then the tf.data pass ${ms((consumed.tfData ?? 0) * 1000)}`,
  );
  ctx.log(`feed timeline: the last shard-feed had sent its rows ${((sf.lastEndedAt - dispatchedAt) / 1000).toFixed(2)} s after dispatch, the worker ended its pass ${seconds.toFixed(2)} s after it`);
  // What the window's CPU went to: on 2 cores the window cannot be shorter than half their sum.
  const cpu = cpuBetween(cpuAtDispatch!, cpuAtEnd!);
  const cpuLine = Object.entries(cpu).map(([group, s]) => `${group} ${s.toFixed(2)} s`).join(", ");
  ctx.log(cpuAtEnd!.size ? `feed CPU from dispatch to the end of the pass (${seconds.toFixed(2)} s of wall time on ${availableParallelism()} cores): ${cpuLine}` : "feed CPU: not measured (no /proc on this system)");
  ctx.log(`feed: ${total} rows in ${objects} JSON Lines objects, batch ${batchSize}: ${seconds.toFixed(2)} s from dispatch to the end of the worker's pass; tf.data from a local file ${local.seconds.toFixed(2)} s`);
  return [{ name: "feed S3 JSONL -> shard-feed -> SQS -> worker tf.data", value: total / seconds, unit: "rows/s", baseline: { name: "tf.data from a local TFRecord file (parallel parse, prefetch, best of 3 passes, before and after)", value: local.rows / local.seconds }, goal: ratioGoal({ min: 0.25, stretch: 0.5 }) }];
}
