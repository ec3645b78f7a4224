/**
 * What the construct cannot build from: a function bundle, a layer or an image's sources that are not
 * where it looks. Props with a wrong value are a `ConfigError` (src/errors.ts), like every
 * other setting of the project.
 */
import { ServerlessTfError } from "../src/errors.ts";
import type { FunctionName, LayerName } from "../src/resources/definitions.ts";

/**
 * A zip function's `index.mjs` is not in `functionsDir/<name>/`.
 *
 * @example
 * try {
 *   new ServerlessTf(stack, "Tf", { functionsDir: "build/functions" });
 * } catch (e) {
 *   if (e instanceof MissingFunctionBundleError) console.error(`no bundle at ${e.bundle}: run npm run build`);
 *   else throw e;
 * }
 */
export class MissingFunctionBundleError extends ServerlessTfError {
  constructor(
    readonly functionName: FunctionName,
    readonly bundle: string,
  ) {
    super(
      `The ${functionName} function's bundle ${bundle} does not exist. Run \`npm run build\` in serverless-tf (it writes dist/functions/<name>/index.mjs), or set functionsDir to the folder that holds <name>/index.mjs.`,
    );
  }
}

/**
 * A layer's folder, `sourceDir/dist/layers/<name>/` with its `nodejs/node_modules/`, is not there.
 *
 * @example
 * try {
 *   new ServerlessTf(stack, "Tf", { sourceDir: "../serverless-tf" });
 * } catch (e) {
 *   if (e instanceof MissingLayerError) console.error(`no ${e.layer} layer at ${e.dir}: run npm run build`);
 *   else throw e;
 * }
 */
export class MissingLayerError extends ServerlessTfError {
  constructor(
    readonly layer: LayerName,
    readonly dir: string,
  ) {
    super(
      `The ${layer} layer ${dir} has no nodejs/node_modules/. Run \`npm run build\` in serverless-tf (it assembles dist/layers/<name>/ from layers/<name>/ and node_modules), or set sourceDir to a built checkout.`,
    );
  }
}

/**
 * A file an image is built from (its Dockerfile, or a file its context must hold) is not under `sourceDir`.
 *
 * @example
 * try {
 *   new ServerlessTf(stack, "Tf", { sourceDir: "../serverless-tf" });
 * } catch (e) {
 *   if (e instanceof MissingImageSourceError) console.error(`the ${e.image} image needs ${e.missing} under ${e.sourceDir}`);
 *   else throw e;
 * }
 */
export class MissingImageSourceError extends ServerlessTfError {
  constructor(
    readonly image: "worker" | "inference",
    readonly missing: string,
    readonly sourceDir: string,
  ) {
    super(
      `The ${image} image is built from ${missing}, which is not under ${sourceDir}. The two images build from the serverless-tf package's own files (its Dockerfiles and the bundles \`npm run build\` writes): set sourceDir to a built checkout, or leave it unset to use the installed package.`,
    );
  }
}
