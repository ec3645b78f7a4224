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
const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
const started = Date.now();
const result = await feedShard(deps, { jobId, shard: { shardId: "s00000", index: 0, uri, format: "jsonl" } });
clearInterval(timer);
peak = Math.max(peak, process.memoryUsage.rss());
console.log(JSON.stringify({ status: result.status, rows: result.cursor, peakMiB: peak / 2 ** 20, seconds: (Date.now() - started) / 1000 }));
