/**
 * `npm run build`: bundles every `functions/<name>/handler.ts` into `dist/functions/<name>/index.mjs`
 * for the Lambda Node.js 22 runtime: ESM, minified, no source map, `@aws-sdk/*` left to the
 * runtime (it ships SDK v3). Prints each bundle's size.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join, relative } from "node:path";
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
    await build({
      entryPoints: [join(functionsDir, name, "handler.ts")],
      outfile: file,
      bundle: true,
      format: "esm",
      platform: "node",
      target: "node22",
      minify: true,
      sourcemap: false,
      external: ["@aws-sdk/*"],
      legalComments: "none",
      // Typed errors take their name from their class (`new.target.name`); callers match on it.
      keepNames: true,
      logLevel: "warning",
    });
    built.push({ name, file, bytes: statSync(file).size });
  }
  const log = options.log ?? console.log;
  for (const b of built) log(`${relative(projectRoot, b.file).padEnd(40)} ${(b.bytes / 1024).toFixed(1).padStart(8)} KiB`);
  return built;
}

/**
 * The installable package's JavaScript: `src/`, `functions/` and `demo/` compiled to ESM with
 * types under `dist/lib/` (tsconfig.build.json), the demo's Python files beside its modules.
 * `npm pack` runs it (`prepack`).
 */
export function buildPackage(log: (line: string) => void = console.log): void {
  const outDir = join(projectRoot, "dist", "lib");
  rmSync(outDir, { recursive: true, force: true });
  const tsc = spawnSync(process.execPath, [join(projectRoot, "node_modules", "typescript", "bin", "tsc"), "-p", join(projectRoot, "tsconfig.build.json")], { stdio: "inherit" });
  if (tsc.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed (exit ${tsc.status})`);
  for (const file of readdirSync(join(projectRoot, "demo")).filter((f) => f.endsWith(".py"))) copyFileSync(join(projectRoot, "demo", file), join(outDir, "demo", file));
  log(`dist/lib: ${(sizeOf(outDir) / 1024).toFixed(0)} KiB of JavaScript, types and demo files`);
}

function sizeOf(path: string): number {
  const s = statSync(path);
  return s.isDirectory() ? readdirSync(path).reduce((n, f) => n + sizeOf(join(path, f)), 0) : s.size;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv[2] === "package") buildPackage();
  else await buildFunctions();
}
