/**
 * Shard-feed memory: the peak RSS of a shard-feed (a process of its own) feeding one JSON Lines
 * shard 10 times larger than a base one, against the same on the base shard. A feed that streams
 * the object from its cursor stays flat; one that reads the object whole grows with it (and with
 * a capped heap runs out of memory).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { createJobQueues, deleteJobQueues } from "../src/jobs/queues.ts";
import { rowToJson } from "../src/protocol/table-source.ts";
import { putObject } from "../src/storage/objects.ts";
import { projectRoot } from "../src/workers/paths.ts";
import { jobSpec } from "../test/helpers/job-spec.ts";
import { DIGITS_SCHEMA } from "../demo/digits-data.ts";
import { digitsRows } from "./coding.ts";
import { ratioGoal, type BenchContext, type Measurement } from "./measurement.ts";

async function feedOnce(ctx: BenchContext, rows: number, heapCapMiB?: number): Promise<{ peakMiB: number; seconds: number; megabytes: number }> {
  const runtime = await ctx.runtime();
  const { clients, registry } = runtime.deps;
  const jobId = `rss-${rows}-${Date.now().toString(36)}`;
  const key = `bench/${jobId}/shard.jsonl`;
  const body = digitsRows(rows).map(rowToJson).join("\n") + "\n";
  await putObject(clients, { bucket: runtime.bucket, key }, body);
  const queues = await createJobQueues(clients, jobId, ["worker-0"]);
  try {
    await registry.createJob({ jobId, mode: "train", spec: jobSpec({ jobId, bucket: runtime.bucket, queues, input: { columns: DIGITS_SCHEMA }, batchSize: 64 }) });
    await registry.transitionJob(jobId, ["CREATED"], "RUNNING");
    const env = { ...process.env, AWS_ENDPOINT_URL: runtime.endpoint, SERVERLESS_TF_BUCKET: runtime.bucket, SERVERLESS_TF_TABLE: runtime.deps.config.tableName };
    const run = spawnSync(process.execPath, [...(heapCapMiB ? [`--max-old-space-size=${heapCapMiB}`] : []), "--import", "tsx", join(projectRoot, "bench/scripts/shard-rss.ts"), jobId, `s3://${runtime.bucket}/${key}`], { cwd: projectRoot, env, encoding: "utf8" });
    if (run.status !== 0) throw new Error(`the shard-feed process failed:\n${run.stderr.slice(-2000)}`);
    const out = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as { status: string; rows: number; peakMiB: number; heapMiB: number; externalMiB: number; seconds: number };
    ctx.log(`  ${rows} rows${heapCapMiB ? `, old space capped at ${heapCapMiB} MiB` : ""}: peak RSS ${out.peakMiB.toFixed(0)} MiB, peak JS heap ${out.heapMiB.toFixed(0)} MiB, peak buffers ${out.externalMiB.toFixed(0)} MiB`);
    if (out.status !== "done" || out.rows !== rows) throw new Error(`the shard-feed fed ${out.rows} of ${rows} rows (${out.status})`);
    return { peakMiB: out.peakMiB, seconds: out.seconds, megabytes: Buffer.byteLength(body) / 1e6 };
  } finally {
    await deleteJobQueues(clients, queues, { includeDlq: true });
    await registry.deleteJob(jobId);
  }
}

/**
 * The figure caps V8's old space (as a memory-bounded function runs): uncapped, V8 lets garbage
 * grow with the work before it collects, which says nothing about what the feed holds. The
 * uncapped runs are logged beside it.
 */
const HEAP_CAP_MIB = 48;

export async function benchShardMemory(ctx: BenchContext, options: { rows?: number } = {}): Promise<Measurement[]> {
  const base = options.rows ?? 20_000;
  const uncapped = [await feedOnce(ctx, base), await feedOnce(ctx, base * 10)];
  ctx.log(`  uncapped: ${(uncapped[1]!.peakMiB / uncapped[0]!.peakMiB).toFixed(2)}x the base shard's peak RSS`);
  const small = await feedOnce(ctx, base, HEAP_CAP_MIB);
  const large = await feedOnce(ctx, base * 10, HEAP_CAP_MIB);
  ctx.log(
    `shard-feed memory: ${base} rows (${small.megabytes.toFixed(1)} MB of JSON Lines) peak RSS ${small.peakMiB.toFixed(0)} MiB in ${small.seconds.toFixed(1)} s; ` +
      `${base * 10} rows (${large.megabytes.toFixed(1)} MB) ${large.peakMiB.toFixed(0)} MiB in ${large.seconds.toFixed(1)} s`,
  );
  return [
    {
      name: `shard-feed peak RSS, 10x larger shard (V8 old space capped at ${HEAP_CAP_MIB} MiB)`,
      value: large.peakMiB,
      unit: "MiB",
      baseline: { name: `the same on a ${base}-row shard`, value: small.peakMiB },
      higherIsBetter: false,
      goal: ratioGoal({ max: 1.2 }),
    },
  ];
}
