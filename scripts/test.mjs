// `npm test`: set up whatever is missing, build the function bundles (the stack tests synthesize
// them), then run both suites against the emulator.
import { spawnSync } from "node:child_process";
import { buildFunctionBundles, ensureSetup, root } from "./setup.mjs";

try {
  ensureSetup();
  buildFunctionBundles();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--import", "tsx", "scripts/test-suite.ts", ...process.argv.slice(2)], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
