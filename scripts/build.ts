/**
 * `npm run build`: bundles every `functions/<name>/handler.ts` into `dist/functions/<name>/index.mjs`
 * for the Lambda Node.js 22 runtime: ESM, minified, no source map, with everything it imports,
 * the AWS SDK included. These files are what runs everywhere: the stack's zip functions are their
 * folders (`infra/serverless-tf.ts`), the inference image builds the same file, and
 * test/integration/runtime/bundles.test.ts invokes them. Then assembles each layer of
 * `layers/<name>/` into `dist/layers/<name>/` (what esbuild must not bundle: native code). Prints
 * each bundle's and layer's size, and fails when a function and its layers exceed Lambda's limit.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { build } from "esbuild";
import { ServerlessTfError } from "../src/errors.ts";
import { FUNCTIONS, bundleOf, layerArchitecture, type FunctionArchitecture, type FunctionName, type LayerName } from "../src/resources/definitions.ts";
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
      metafile: true,
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
    const bundled = Object.keys(result.metafile.inputs).find((input) => LAYER_PACKAGES.some((pkg) => input.includes(`node_modules/${pkg}/`)));
    if (bundled) throw new BundledLayerPackageError(name, bundled);
    const bytes = writeAtomically(file, result.outputFiles[0]!.contents);
    built.push({ name, file, bytes });
  }
  const log = options.log ?? console.log;
  for (const b of built) log(`${relative(projectRoot, b.file).padEnd(40)} ${(b.bytes / 1024).toFixed(1).padStart(8)} KiB`);
  return built;
}

/** Lambda's limit on a function's code and all its layers, unzipped (Lambda developer guide, "Lambda quotas": 250 MB). */
export const LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024;

/** Node's name (`process.arch`, the binding's folder) for each Lambda architecture. */
const NODE_ARCH: Readonly<Record<FunctionArchitecture, string>> = { x86_64: "x64", arm64: "arm64" };

/**
 * What each layer holds: files of packages installed in the root node_modules, copied as they are
 * into `nodejs/node_modules/<package>/`. A layer carries one platform's native code only: the
 * functions that name it run on one architecture (`layerArchitecture`), and every other
 * platform's binaries would only count against Lambda's limit.
 */
const LAYER_CONTENTS: Readonly<Record<LayerName, (nodeArch: string) => readonly { readonly pkg: string; readonly paths: readonly string[] }[]>> = {
  // onnxruntime-node's dist/ requires `../bin/napi-v6/<platform>/<arch>/onnxruntime_binding.node`
  // (dist/binding.js), which loads libonnxruntime.so.1 beside it (the CPU execution provider), and
  // re-exports onnxruntime-common's API. The two files by name: an install without
  // onnxruntime-node-install=skip downloads CUDA providers into the same folder (script/install.js),
  // which the CPU-only functions never load. Its other dependencies, adm-zip and global-agent,
  // serve that install script alone; lib/ holds the TypeScript sources of dist/. Neither package
  // ships a LICENSE file (both say MIT in package.json).
  onnxruntime: (nodeArch) => [
    {
      pkg: "onnxruntime-node",
      paths: ["package.json", "README.md", "dist", ...["onnxruntime_binding.node", "libonnxruntime.so.1"].map((f) => `bin/napi-v6/linux/${nodeArch}/${f}`)],
    },
    { pkg: "onnxruntime-common", paths: ["package.json", "README.md", "dist"] },
  ],
};

/** Every package a layer provides (the same on every architecture): none may be bundled into a function. */
const LAYER_PACKAGES = [...new Set(Object.values(LAYER_CONTENTS).flatMap((contents) => contents(NODE_ARCH.x86_64).map((c) => c.pkg)))];

export interface BuiltLayer {
  readonly name: LayerName;
  /** Absolute path of the layer's folder (`dist/layers/<name>/`, holding `nodejs/`). */
  readonly dir: string;
  readonly architecture: FunctionArchitecture;
  readonly bytes: number;
}

/**
 * Assembles each layer into `outDir/<name>/` (default `dist/layers`) in the Lambda layer layout,
 * `nodejs/node_modules/<package>/`, from the root node_modules: no network, no install. Files
 * already there with the source's size and time are left alone, the others replaced one by one
 * through a rename, so a second build running at once (or a synth reading the folder) never sees
 * half a file. Then checks every function that has layers against Lambda's unzipped limit, with
 * its bundle from `functionsDir` (default `dist/functions`, built first).
 *
 * @example
 * const [onnx] = buildLayers();
 * join(onnx.dir, "nodejs", "node_modules", "onnxruntime-node"); // what Lambda puts on NODE_PATH as /opt/nodejs/node_modules
 */
export function buildLayers(options: { outDir?: string; functionsDir?: string; log?: (line: string) => void } = {}): BuiltLayer[] {
  const outDir = options.outDir ?? join(projectRoot, "dist", "layers");
  const functionsDir = options.functionsDir ?? join(projectRoot, "dist", "functions");
  const log = options.log ?? console.log;
  const built = (Object.keys(LAYER_CONTENTS) as LayerName[]).map((name): BuiltLayer => {
    const architecture = layerArchitecture(name);
    const pins = (JSON.parse(readFileSync(join(projectRoot, "layers", name, "package.json"), "utf8")) as { dependencies?: Record<string, string> }).dependencies ?? {};
    const files = new Map<string, string>();
    for (const { pkg, paths } of LAYER_CONTENTS[name](NODE_ARCH[architecture])) {
      const source = join(projectRoot, "node_modules", pkg);
      const installed = existsSync(join(source, "package.json")) ? (JSON.parse(readFileSync(join(source, "package.json"), "utf8")) as { version: string }).version : undefined;
      if (installed === undefined) throw new LayerSourceError(name, `${relative(projectRoot, source)} is not installed`);
      if (pkg in pins && pins[pkg] !== installed) throw new LayerSourceError(name, `layers/${name}/package.json pins ${pkg} ${pins[pkg]}, node_modules has ${installed}`);
      for (const path of paths) {
        if (!existsSync(join(source, path))) throw new LayerSourceError(name, `${relative(projectRoot, join(source, path))} is missing`);
        for (const file of filesUnder(join(source, path))) files.set(join("nodejs", "node_modules", pkg, relative(source, file)), file);
      }
    }
    const dir = join(outDir, name);
    return { name, dir, architecture, bytes: syncFiles(dir, files) };
  });
  for (const layer of built) log(`${relative(projectRoot, layer.dir).padEnd(40)} ${(layer.bytes / 1024).toFixed(1).padStart(8)} KiB (linux ${NODE_ARCH[layer.architecture]})`);

  const bytesOf = new Map(built.map((l) => [l.name, l.bytes]));
  for (const fn of Object.values(FUNCTIONS).filter((f) => f.layers?.length)) {
    const code = sizeOf(join(functionsDir, bundleOf(fn.name)));
    const total = code + fn.layers!.reduce((n, l) => n + bytesOf.get(l)!, 0);
    if (total > LAMBDA_UNZIPPED_LIMIT_BYTES) throw new LambdaSizeError(fn.name, code, total);
    log(`${fn.name}: bundle and layers ${mib(total)} of Lambda's ${mib(LAMBDA_UNZIPPED_LIMIT_BYTES)} unzipped`);
  }
  return built;
}

/** A function bundle includes a package its layer provides: it would ship twice, and the native part not at all. */
export class BundledLayerPackageError extends ServerlessTfError {
  constructor(
    readonly functionName: string,
    readonly input: string,
  ) {
    super(
      `functions/${functionName}/handler.ts bundles ${input}, which a layer provides at run time (dist/layers/). Load it with createRequire(import.meta.url)("<package>") and import only its types (functions/inference/onnx-engine.ts does), so esbuild leaves it out.`,
    );
  }
}

/** A layer's source files are not in node_modules as layers/<name>/package.json pins them. */
export class LayerSourceError extends ServerlessTfError {
  constructor(
    readonly layer: LayerName,
    readonly detail: string,
  ) {
    super(`The ${layer} layer is assembled from node_modules, and ${detail}. Run \`npm run setup\` (it installs with ONNXRUNTIME_NODE_INSTALL=skip), or align layers/${layer}/package.json with package.json.`);
  }
}

/** A function's bundle and layers, unzipped, exceed what Lambda deploys. */
export class LambdaSizeError extends ServerlessTfError {
  constructor(
    readonly functionName: FunctionName,
    readonly bundleBytes: number,
    readonly totalBytes: number,
  ) {
    super(
      `${functionName}: its bundle (${mib(bundleBytes)}) and layers come to ${mib(totalBytes)} unzipped, over Lambda's ${mib(LAMBDA_UNZIPPED_LIMIT_BYTES)}. Take files out of its layers (scripts/build.ts LAYER_CONTENTS), or package it as an image.`,
    );
  }
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

/**
 * Makes `dir` hold exactly `files` (relative path -> source file): copies what differs in size or
 * time, each through a rename, then deletes what is not listed. Returns the files' total size.
 */
function syncFiles(dir: string, files: ReadonlyMap<string, string>): number {
  let bytes = 0;
  for (const [path, source] of files) {
    const from = statSync(source);
    bytes += from.size;
    const to = join(dir, path);
    const current = existsSync(to) ? statSync(to) : undefined;
    // Whole milliseconds: utimes keeps no finer time than a Date holds.
    if (current && current.size === from.size && Math.floor(current.mtimeMs) === Math.floor(from.mtimeMs)) continue;
    mkdirSync(dirname(to), { recursive: true });
    const partial = `${to}.${process.pid}.partial`;
    copyFileSync(source, partial);
    utimesSync(partial, from.atime, from.mtime);
    renameSync(partial, to);
  }
  const wanted = new Set([...files.keys()].map((p) => join(dir, p)));
  for (const file of filesUnder(dir)) if (!wanted.has(file) && !file.endsWith(".partial")) rmSync(file);
  return bytes;
}

function filesUnder(path: string): string[] {
  if (!existsSync(path)) return [];
  return statSync(path).isDirectory() ? readdirSync(path).flatMap((f) => filesUnder(join(path, f))) : [path];
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function sizeOf(path: string): number {
  const s = statSync(path);
  return s.isDirectory() ? readdirSync(path).reduce((n, f) => n + sizeOf(join(path, f)), 0) : s.size;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await buildFunctions();
  buildLayers();
  if (process.argv[2] === "package") buildPackage();
}
