// Idempotent set-up for a fresh machine: node modules, then the project virtualenv
// (pinned TensorFlow, moto server, the python/ worker package). Plain Node builtins
// only, because it runs before node_modules exists. Each step is skipped when the
// hash of its inputs matches the stamp it left last time.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const stamps = join(root, ".setup-stamps");
export const venvPython = join(root, ".venv", "bin", "python");

function hashOf(files) {
  const h = createHash("sha256");
  for (const f of files) h.update(existsSync(join(root, f)) ? readFileSync(join(root, f)) : f);
  return h.digest("hex");
}

function run(cmd, args, what, env = {}) {
  const started = Date.now();
  console.error(`[setup] ${what}: ${cmd} ${args.join(" ")}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, ...env } });
  if (r.status !== 0) {
    throw new Error(`[setup] ${what} failed (exit ${r.status ?? r.signal}). Fix the error above and run the command again.`);
  }
  console.error(`[setup] ${what} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function step(name, inputs, ready, action) {
  mkdirSync(stamps, { recursive: true });
  const stampFile = join(stamps, name);
  const want = hashOf(inputs);
  if (ready() && existsSync(stampFile) && readFileSync(stampFile, "utf8") === want) return;
  action();
  writeFileSync(stampFile, want);
}

function findSystemPython() {
  for (const candidate of [process.env.SERVERLESS_TF_BASE_PYTHON, "python3.11", "python3.12", "python3"]) {
    if (!candidate) continue;
    const r = spawnSync(candidate, ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"], { encoding: "utf8" });
    if (r.status !== 0) continue;
    const [major, minor] = r.stdout.trim().split(".").map(Number);
    // TensorFlow 2.21 publishes wheels for CPython 3.10 to 3.13.
    if (major === 3 && minor >= 10 && minor <= 13) return candidate;
  }
  throw new Error("[setup] no CPython 3.10-3.13 found: install one, or point SERVERLESS_TF_BASE_PYTHON at it.");
}

export function ensureSetup() {
  // onnxruntime-node's install script would fetch CUDA providers from the internet; the CPU
  // binding it ships is all the signature-mode engine uses (functions/inference/onnx-engine.ts).
  step("node-modules", ["package-lock.json"], () => existsSync(join(root, "node_modules", ".package-lock.json")), () =>
    run("npm", ["ci", "--no-audit", "--no-fund"], "install node modules", { ONNXRUNTIME_NODE_INSTALL: "skip" }),
  );
  step("venv", ["python/requirements.lock"], () => existsSync(venvPython), () => {
    if (!existsSync(venvPython)) run(findSystemPython(), ["-m", "venv", ".venv"], "create .venv");
    run(venvPython, ["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", "python/requirements.lock"], "install pinned Python packages");
  });
  step("worker-package", ["python/pyproject.toml", "python/requirements.lock"], () => existsSync(venvPython), () =>
    run(venvPython, ["-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "-e", "python"], "install the serverless_tf worker package"),
  );
}

/**
 * The function bundles (`dist/functions/<name>/index.mjs`, scripts/build.ts): the stack deploys
 * them and the tests synthesize it, so every command builds them first. Not stamped: esbuild
 * rebuilds every bundle and the onnxruntime layer in a few seconds, less than hashing every source it reads would save.
 */
export function buildFunctionBundles() {
  const started = Date.now();
  // Its size table goes to stderr with the other set-up lines: stdout is the command's own.
  const r = spawnSync(process.execPath, ["--import", "tsx", "scripts/build.ts"], { cwd: root, stdio: ["ignore", 2, 2] });
  if (r.status !== 0) throw new Error(`[setup] bundling the functions failed (exit ${r.status ?? r.signal}). Fix the error above and run the command again.`);
  console.error(`[setup] function bundles built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    ensureSetup();
    console.error("[setup] ready");
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  }
}
