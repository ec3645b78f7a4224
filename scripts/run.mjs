// `npm run demo` / `npm run bench`: set up whatever is missing, build the function bundles, then
// run a TypeScript entry point.
import { spawnSync } from "node:child_process";
import { buildFunctionBundles, ensureSetup, root } from "./setup.mjs";

const [entry, ...args] = process.argv.slice(2);
try {
  ensureSetup();
  // `npm run build` runs scripts/build.ts itself: no need to bundle twice.
  if (entry !== "scripts/build.ts") buildFunctionBundles();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--import", "tsx", entry, ...args], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
