/**
 * Where the construct's code comes from: the zip functions from the bundles `npm run build`
 * writes (`dist/functions/<name>/index.mjs`, scripts/build.ts), their layers from the folders it
 * assembles (`dist/layers/<name>/`), the two images from the sources their Dockerfiles build.
 * All default to the serverless-tf package this module belongs to,
 * found from the module's own location: `infra/code.ts` in a checkout, `dist/lib/infra/code.js`
 * in an installed package.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ServerlessTfError } from "../src/errors.ts";
import { bundleOf, type FunctionName, type LayerName } from "../src/resources/definitions.ts";
import { MissingFunctionBundleError, MissingImageSourceError, MissingLayerError } from "./errors.ts";

const PACKAGE_NAME = "serverless-tf";

/**
 * The nearest folder above `from` whose package.json is serverless-tf's.
 *
 * @example
 * join(packageRoot(), "dist", "functions"); // where `npm run build` put the bundles
 */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: unknown }).name === PACKAGE_NAME) return dir;
    if (dirname(dir) === dir) throw new ServerlessTfError(`No ${PACKAGE_NAME} package.json above ${from}: the construct module was moved out of its package. Set functionsDir and sourceDir.`);
  }
}

/** The folder a zip function deploys: `functionsDir/<bundle>/`, holding the bundle `index.mjs` it runs. */
export function functionBundleDir(functionsDir: string, name: FunctionName): string {
  const dir = join(functionsDir, bundleOf(name));
  if (!existsSync(join(dir, "index.mjs"))) throw new MissingFunctionBundleError(name, join(dir, "index.mjs"));
  return dir;
}

/**
 * The folder a layer deploys: `sourceDir/dist/layers/<name>/`, in the Lambda layer layout
 * (`nodejs/node_modules/`, which Lambda extracts to `/opt/nodejs/node_modules`, on NODE_PATH).
 */
export function layerDir(sourceDir: string, name: LayerName): string {
  const dir = join(sourceDir, "dist", "layers", name);
  if (!existsSync(join(dir, "nodejs", "node_modules"))) throw new MissingLayerError(name, dir);
  return dir;
}

export interface ImageSources {
  /** `python/`: the worker image's Dockerfile and its context. */
  readonly workerContext: string;
  /** The inference image: `functions/inference/Dockerfile`, with the source root as its context. */
  readonly inference: { readonly context: string; readonly dockerfile: string };
}

/** The two images' sources under `sourceDir`, each checked for what its build copies first. */
export function imageSources(sourceDir: string): ImageSources {
  const need = (image: "worker" | "inference", ...path: string[]) => {
    if (!existsSync(join(sourceDir, ...path))) throw new MissingImageSourceError(image, path.join("/"), sourceDir);
  };
  need("worker", "python", "Dockerfile");
  need("inference", "functions", "inference", "Dockerfile");
  // The handler it copies: the bundle `npm run build` writes (and the package ships).
  need("inference", "dist", "functions", "inference", "index.mjs");
  return { workerContext: join(sourceDir, "python"), inference: { context: sourceDir, dockerfile: join(sourceDir, "functions", "inference", "Dockerfile") } };
}
