/**
 * The shard-feed memory figure's subject: one shard-feed, in a process of its own, feeding one
 * shard to a job's feed queue. `node --import tsx bench/scripts/shard-rss.ts JOB_ID SHARD_URI`
 * (the job and its queue made by bench/shard-memory.ts) prints JSON: the peak RSS in MiB sampled
 * every 10 ms while it fed, and the seconds it took.
 */
import { feedShard } from "../../functions/shard-feed/feed-shard.ts";
import { depsFromEnv } from "../../src/jobs/deps.ts";

const [jobId, uri] = process.argv.slice(2) as [string, string];
const deps = depsFromEnv();
let peak = process.memoryUsage.rss();
let heap = 0;
let external = 0;
const timer = setInterval(() => {
  const m = process.memoryUsage();
  peak = Math.max(peak, m.rss);
  heap = Math.max(heap, m.heapUsed);
  external = Math.max(external, m.external + m.arrayBuffers);
}, 10);
const started = Date.now();
const result = await feedShard(deps, { jobId, shard: { shardId: "s00000", index: 0, uri, format: "jsonl" } });
clearInterval(timer);
peak = Math.max(peak, process.memoryUsage.rss());
console.log(JSON.stringify({ status: result.status, rows: result.cursor, peakMiB: peak / 2 ** 20, heapMiB: heap / 2 ** 20, externalMiB: external / 2 ** 20, seconds: (Date.now() - started) / 1000 }));
