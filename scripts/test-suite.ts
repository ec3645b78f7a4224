/**
 * Runs every test: the TypeScript suite (node's test runner) and the Python suite (pytest),
 * both against one AWS emulator, then prints one total over both as its last line.
 *
 * `npm test` runs everything; `npm test -- test/unit/coding.test.ts python/tests/test_coding.py`
 * runs just the named files.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { startEmulator, type RunningEmulator } from "../src/runtime/emulator.ts";
import { projectPython, projectRoot } from "../src/workers/paths.ts";

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

function listTests(dir: string, suffix: (name: string) => boolean): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...listTests(path, suffix));
    else if (suffix(entry)) out.push(relative(projectRoot, path));
  }
  return out.sort();
}

/**
 * A secret that exists only for this run. It is the emulator credential every client signs with,
 * so any log line that prints credentials, the environment or a signed request would show it.
 */
const canary = `canary-${randomBytes(12).toString("hex")}`;
let canaryLeaks = 0;

/** Runs a test runner, forwarding its output while counting the lines that leak the canary. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: projectRoot, env, stdio: ["ignore", "pipe", "pipe"] });
    for (const [stream, sink] of [
      [child.stdout!, process.stdout],
      [child.stderr!, process.stderr],
    ] as const) {
      createInterface({ input: stream }).on("line", (line) => {
        if (line.includes(canary)) {
          canaryLeaks += 1;
          line = line.replaceAll(canary, "<canary secret>");
        }
        sink.write(line + "\n");
      });
    }
    child.once("close", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

function tapCounts(path: string): Counts {
  const tap = readFileSync(path, "utf8");
  const count = (key: string) => Number(new RegExp(`^# ${key} (\\d+)$`, "m").exec(tap)?.[1] ?? 0);
  return { passed: count("pass"), failed: count("fail") + count("cancelled"), skipped: count("skipped") + count("todo") };
}

function junitCounts(path: string): Counts {
  const xml = readFileSync(path, "utf8");
  const suite = /<testsuite\b([^>]*)>/.exec(xml)?.[1] ?? "";
  const attr = (name: string) => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(suite)?.[1] ?? 0);
  const failed = attr("failures") + attr("errors");
  const skipped = attr("skipped");
  return { passed: attr("tests") - failed - skipped, failed, skipped };
}

async function main(): Promise<number> {
  const requested = process.argv.slice(2);
  const tsFiles = requested.length ? requested.filter((f) => f.endsWith(".ts")) : listTests(join(projectRoot, "test"), (n) => n.endsWith(".test.ts"));
  const pyFiles = requested.length ? requested.filter((f) => f.endsWith(".py")) : ["python/tests"];
  // One folder per run: two runs at once (a full suite and a single file) must not read each other's counts.
  const reports = join(projectRoot, ".tmp", "reports", String(process.pid));
  mkdirSync(reports, { recursive: true });

  let emulator: RunningEmulator | undefined;
  const env: NodeJS.ProcessEnv = { ...process.env, SERVERLESS_TF_PYTHON: projectPython, PYTHONUNBUFFERED: "1" };
  if (!env.AWS_ENDPOINT_URL) {
    emulator = await startEmulator();
    env.AWS_ENDPOINT_URL = emulator.endpoint;
    console.log(`[test] moto server (pid ${emulator.pid}) at ${emulator.endpoint}`);
  } else {
    console.log(`[test] using the AWS endpoint ${env.AWS_ENDPOINT_URL}`);
  }
  env.AWS_REGION ??= "us-east-1";
  if (emulator) {
    env.AWS_ACCESS_KEY_ID = "test";
    env.AWS_SECRET_ACCESS_KEY = canary;
  }
  const stop = () => void emulator?.stop();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  const totals: Counts = { passed: 0, failed: 0, skipped: 0 };
  const add = (c: Counts) => {
    totals.passed += c.passed;
    totals.failed += c.failed;
    totals.skipped += c.skipped;
  };
  try {
    if (tsFiles.length) {
      const tap = join(reports, "node.tap");
      const code = await run(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", "--test-reporter-destination=stdout", "--test-reporter=tap", `--test-reporter-destination=${tap}`, ...tsFiles], env);
      const counts = tapCounts(tap);
      if (code !== 0 && counts.failed === 0) counts.failed = 1; // the runner itself failed
      console.log(`[test] TypeScript: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
      add(counts);
    }
    if (pyFiles.length) {
      const xml = join(reports, "pytest.xml");
      const code = await run(projectPython, ["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", `--junitxml=${xml}`, ...pyFiles], env);
      const counts = code === 5 ? { passed: 0, failed: 0, skipped: 0 } : junitCounts(xml);
      if (code !== 0 && code !== 5 && counts.failed === 0) counts.failed = 1;
      console.log(`[test] Python: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
      add(counts);
    }
  } finally {
    await emulator?.stop();
    rmSync(reports, { recursive: true, force: true });
  }
  if (emulator) {
    console.log(`[test] canary secret: ${canaryLeaks === 0 ? "never appeared in the output" : `LEAKED in ${canaryLeaks} line(s) (shown masked above)`}`);
    if (canaryLeaks) totals.failed += 1;
    else totals.passed += 1;
  }
  console.log(`${totals.passed} passed, ${totals.failed} failed` + (totals.skipped ? `, ${totals.skipped} skipped` : ""));
  // A skipped test promises nothing: the run fails until it runs (the reasons are in the log above).
  if (totals.skipped) console.log(`[test] ${totals.skipped} test(s) skipped: a skip fails the run`);
  return totals.failed === 0 && totals.skipped === 0 && totals.passed > 0 ? 0 : 1;
}

process.exit(await main());
