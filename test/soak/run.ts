/**
 * `npm run test:soak`: the reliability soak (issue #8). Runs test/soak/*.soak.ts one file at a
 * time, each on a fresh emulator (the one bootstrap, src/runtime/emulator.ts) unless
 * AWS_ENDPOINT_URL is set, and prints a table from the figures each left in .tmp/soak/. Sizes: SOAK_ROWS,
 * SOAK_POISON, SOAK_FEED_ROWS, SOAK_KILLS, SOAK_HOLD_SECONDS (defaults 10,000 / 10,000 / 10,000 / 20 / 600).
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startEmulator, type RunningEmulator } from "../../src/runtime/emulator.ts";
import { projectPython, projectRoot } from "../../src/workers/paths.ts";
import { SOAK_FIGURES_DIR } from "./figures.ts";

const files = (process.argv.slice(2).length ? process.argv.slice(2) : readdirSync(join(projectRoot, "test/soak")).filter((f) => f.endsWith(".soak.ts")).map((f) => `test/soak/${f}`)).sort();
rmSync(SOAK_FIGURES_DIR, { recursive: true, force: true });
const env: NodeJS.ProcessEnv = { ...process.env, SERVERLESS_TF_PYTHON: projectPython, PYTHONUNBUFFERED: "1", AWS_REGION: process.env.AWS_REGION ?? "us-east-1" };
// A fresh emulator per file: moto copies a whole DynamoDB table in every TransactWriteItems
// (README, Reliability), so the 20,000 items the inference soaks leave made each checkpoint of
// the kill loop after them take seconds and starved its workers' heartbeats. One scenario must
// not slow the next; on DynamoDB a table's size costs nothing.
let failed = 0;
for (const file of files) {
  console.log(`[soak] ${file}`);
  let emulator: RunningEmulator | undefined;
  const fileEnv = { ...env };
  if (!fileEnv.AWS_ENDPOINT_URL) {
    emulator = await startEmulator();
    Object.assign(fileEnv, { AWS_ENDPOINT_URL: emulator.endpoint, AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test" });
  }
  try {
    const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", file], { cwd: projectRoot, env: fileEnv, stdio: "inherit" });
    if (r.status !== 0) failed += 1;
  } finally {
    await emulator?.stop();
  }
}

const read = (name: string): Record<string, any> | undefined => {
  const path = join(SOAK_FIGURES_DIR, `${name}.json`);
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as Record<string, any>) : undefined;
};
const once = read("inference-exactly-once");
const poison = read("inference-poison");
const feed = read("training-feed");
const kills = read("kill-loop");
const held = read("held-feed");
const header = ["scenario", "rows in", "rows out", "duplicates", "lost", "DLQ", "kills survived", "injected faults"];
const rows: string[][] = [header];
const dash = "-";
if (once) rows.push(["exactly-once inference", String(once.rowsIn), String(once.rowsOut), String(once.duplicates), String(once.lost), String(once.dlq), dash, String(once.injectedFaults)]);
if (poison) {
  const byReason = Object.entries(poison.dlqByReason as Record<string, number>).map(([k, v]) => `${k} ${v}`).join(", ");
  rows.push(["poison (good rows)", String(poison.good), String(poison.goodOut), String(poison.goodDuplicates), String(poison.goodLost), String(poison.goodInDlq), dash, "0 (off)"]);
  rows.push(["poison (bad rows)", String(poison.bad), dash, String(poison.dlqDuplicates), String(poison.badMissing), `${poison.badInDlq}: ${byReason}`, dash, "0 (off)"]);
}
if (feed) rows.push(["training feed", String(feed.rowsIn), `${feed.unique} unique of ${feed.rowsConsumed}`, `${feed.duplicatesOrPadding} (incl. padding)`, String(feed.lost), dash, dash, String(feed.injectedFaults)]);
if (kills) rows.push(["kill loop (digits)", dash, `acc ${Number(kills.accuracy).toFixed(4)} vs ${Number(kills.baselineAccuracy).toFixed(4)}`, dash, dash, dash, `${kills.kills} (${kills.restarts} restarts)`, dash]);
if (held) rows.push([`held feed message (${held.heldSeconds} s step)`, "8", String((held.batches as number[]).reduce((a, b) => a + b, 0)), `${held.cameBack} redeliveries`, dash, String(held.dlq), dash, "0 (off)"]);
console.log("\n| " + header.join(" | ") + " |\n|" + header.map(() => " --- |").join("") + "\n" + rows.slice(1).map((r) => "| " + r.join(" | ") + " |").join("\n"));
if (once) {
  console.log(`\nexactly-once: ${once.rowsPerSecond} rows/s over ${once.seconds} s; ${once.service.redelivered} redelivered records, ${once.service.duplicates} acknowledged as already served, ${once.service.retried} retried`);
  console.log(`exactly-once settings: standard output queue, visibility ${once.visibilityTimeoutSeconds} s, maxReceiveCount ${once.maxReceiveCount}, cold engine; ${once.stalls} calls stalled 31 s; ${once.duplicates} duplicates (before deduplication by row id) against ${once.lostSendResponses} output sends whose response was lost`);
}
if (poison) console.log(`poison: engine pid ${poison.enginePid.before} -> ${poison.enginePid.after}, engine RSS ${poison.engineRssMiB.before} -> ${poison.engineRssMiB.after} MiB, runner RSS ${poison.nodeRssMiB} MiB`);
console.log(`\n${files.length - failed} soak file(s) passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
