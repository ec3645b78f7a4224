/**
 * `npm run bench [-- <figure> ...]`: runs the figures registered in bench/figures.ts (all, or
 * those named) and prints each as a ratio against the baseline it measured in the same run.
 * Starts the emulator when AWS_ENDPOINT_URL is unset.
 */
import { LocalRuntime } from "../src/runtime/local-runtime.ts";
import { figures, type BenchContext, type Measurement } from "./figures.ts";

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
  const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
  console.log("\n=== figures (ratio = value / baseline, same run)");
  for (const m of results) {
    const ratio = m.value / m.baseline.value;
    console.log(`${m.name}: ${fmt(m.value)} ${m.unit} vs ${m.baseline.name} ${fmt(m.baseline.value)} ${m.unit} = ${ratio.toFixed(3)}x${m.higherIsBetter === false ? " (lower is better)" : ""}`);
  }
}

await main(process.argv.slice(2));
