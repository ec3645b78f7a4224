// `npm run demo` / `npm run bench`: set up whatever is missing, then run a TypeScript entry point.
import { spawnSync } from "node:child_process";
import { ensureSetup, root } from "./setup.mjs";

const [entry, ...args] = process.argv.slice(2);
try {
  ensureSetup();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--import", "tsx", entry, ...args], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
