/**
 * `npm run bench [-- <figure> ...]`: runs the figures registered in bench/figures.ts (all, or
 * those named) and prints each as a ratio against the baseline it measured in the same run.
 * Starts the emulator when AWS_ENDPOINT_URL is unset.
 */
import { LocalRuntime } from "../src/runtime/local-runtime.ts";
import { mkdirSync, readFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../src/workers/paths.ts";
import { figures } from "./figures.ts";
import { ratioOf, type BenchContext, type Measurement } from "./measurement.ts";

async function main(names: readonly string[]): Promise<void> {
  const unknown = names.filter((n) => !figures.some((f) => f.name === n));
  if (unknown.length) throw new Error(`unknown figure(s) ${unknown.join(", ")}; registered: ${figures.map((f) => f.name).join(", ")}`);
  let runtime: Promise<LocalRuntime> | undefined;
  const ctx: BenchContext = { runtime: () => (runtime ??= LocalRuntime.start()), log: (line) => console.log(line) };
  const results: Measurement[] = [];
  try {
    for (const figure of figures.filter((f) => !names.length || names.includes(f.name))) {
      console.log(`--- ${figure.name}`);
      results.push(...(await figure.run(ctx)));
    }
  } finally {
    await (await runtime)?.close();
  }
  const fmt = (x: number) => (Math.abs(x) >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(2));
  const file = join(projectRoot, ".tmp", "bench", "results.json");
  const last = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as { at: string; figures: { name: string; ratio: number }[] }) : undefined;
  console.log("\n=== figures (ratio = value / baseline, same run; goal; change against the last run)");
  for (const m of results) {
    const ratio = ratioOf(m);
    const before = last?.figures.find((f) => f.name === m.name)?.ratio;
    const goal = m.goal ? `  goal ${m.goal.text}: ${m.goal.met(m) ? "met" : "NOT met"}` : "";
    const change = before !== undefined ? `  (last run ${before.toFixed(3)}x)` : "";
    console.log(`${m.name}: ${fmt(m.value)} ${m.unit} vs ${m.baseline.name} ${fmt(m.baseline.value)} ${m.unit} = ${ratio.toFixed(3)}x${m.higherIsBetter === false ? " (lower is better)" : ""}${goal}${change}`);
  }
  mkdirSync(join(projectRoot, ".tmp", "bench"), { recursive: true });
  const figuresJson = results.map((m) => ({ name: m.name, value: m.value, unit: m.unit, baseline: m.baseline, ratio: ratioOf(m), goal: m.goal?.text ?? null, met: m.goal ? m.goal.met(m) : null }));
  writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), ...(last ? { previous: last.at } : {}), figures: figuresJson }, null, 2));
  console.log(`figures written to ${file}`);
}

await main(process.argv.slice(2));
