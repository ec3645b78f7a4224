/**
 * `npm run build`: bundles every `functions/<name>/handler.ts` into `dist/functions/<name>/index.mjs`
 * for the Lambda Node.js 22 runtime: ESM, minified, no source map, with everything it imports,
 * the AWS SDK included. These files are what runs everywhere: the stack's zip functions are their
 * folders (`infra/serverless-tf.ts`), the inference image builds the same file, and
 * test/integration/runtime/bundles.test.ts invokes them. Prints each bundle's size.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { build } from "esbuild";
import { projectRoot } from "../src/workers/paths.ts";

export interface BuiltFunction {
  readonly name: string;
  /** Absolute path of the bundle. */
  readonly file: string;
  readonly bytes: number;
}

/**
 * Bundles the functions under `functions/` into `outDir` (default `dist/functions`).
 *
 * @example
 * const built = await buildFunctions();
 * const { handler } = await import(pathToFileURL(built[0].file).href);
 */
export async function buildFunctions(options: { outDir?: string; log?: (line: string) => void } = {}): Promise<BuiltFunction[]> {
  const functionsDir = join(projectRoot, "functions");
  const outDir = options.outDir ?? join(projectRoot, "dist", "functions");
  const names = readdirSync(functionsDir)
    .filter((name) => existsSync(join(functionsDir, name, "handler.ts")))
    .sort();
  const built: BuiltFunction[] = [];
  for (const name of names) {
    const file = join(outDir, name, "index.mjs");
    const result = await build({
      entryPoints: [join(functionsDir, name, "handler.ts")],
      outfile: file,
      write: false,
      bundle: true,
      format: "esm",
      platform: "node",
      target: "node22",
      // ESM entry points first: the SDK's ES builds tree-shake, its CommonJS ones do not.
      mainFields: ["module", "main"],
      minify: true,
      sourcemap: false,
      // The pinned AWS SDK is bundled rather than taken from the runtime, so a function runs the
      // client versions the tests run, whatever the Lambda runtime ships this month.
      external: [],
      // CommonJS dependencies bundled into an ES module still call require() for Node builtins.
      banner: { js: "import { createRequire as __stfCreateRequire } from 'node:module'; const require = __stfCreateRequire(import.meta.url);" },
      legalComments: "none",
      // Typed errors take their name from their class (`new.target.name`); callers match on it.
      keepNames: true,
      logLevel: "warning",
    });
    const bytes = writeAtomically(file, result.outputFiles[0]!.contents);
    built.push({ name, file, bytes });
  }
  const log = options.log ?? console.log;
  for (const b of built) log(`${relative(projectRoot, b.file).padEnd(40)} ${(b.bytes / 1024).toFixed(1).padStart(8)} KiB`);
  return built;
}

/**
 * The installable package's JavaScript: `src/`, `functions/`, `demo/` and the CDK construct
 * (`infra/`) compiled to ESM with types under `dist/lib/` (tsconfig.build.json), the demo's Python
 * files beside its modules. `npm pack` runs it (`prepack`) after {@link buildFunctions}, whose
 * bundles the construct deploys.
 */
export function buildPackage(log: (line: string) => void = console.log): void {
  const outDir = join(projectRoot, "dist", "lib");
  rmSync(outDir, { recursive: true, force: true });
  const tsc = spawnSync(process.execPath, [join(projectRoot, "node_modules", "typescript", "bin", "tsc"), "-p", join(projectRoot, "tsconfig.build.json")], { stdio: "inherit" });
  if (tsc.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed (exit ${tsc.status})`);
  for (const file of readdirSync(join(projectRoot, "demo")).filter((f) => f.endsWith(".py"))) copyFileSync(join(projectRoot, "demo", file), join(outDir, "demo", file));
  log(`dist/lib: ${(sizeOf(outDir) / 1024).toFixed(0)} KiB of JavaScript, types and demo files`);
}

/**
 * Writes through a temporary file and a rename, so a reader (a synth staging the folder, a test
 * importing the bundle) sees the old file or the new one, never half of one: two runs may build
 * at once.
 */
function writeAtomically(file: string, contents: Uint8Array): number {
  mkdirSync(dirname(file), { recursive: true });
  const partial = `${file}.${process.pid}.partial`;
  writeFileSync(partial, contents);
  renameSync(partial, file);
  return contents.byteLength;
}

function sizeOf(path: string): number {
  const s = statSync(path);
  return s.isDirectory() ? readdirSync(path).reduce((n, f) => n + sizeOf(join(path, f)), 0) : s.size;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await buildFunctions();
  if (process.argv[2] === "package") buildPackage();
}
