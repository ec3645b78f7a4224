/**
 * Saving and loading stages: every stage (estimator, model, transformer, pipeline) is saved as
 * one JSON metadata object, `<uri>/metadata.json`:
 *
 * ```json
 * {"format": "serverless-tf/stage", "formatVersion": 1, "stageClass": "StandardScalerModel",
 *  "params": {...}, "artifacts": {"data": "s3://bucket/pipelines/p/stages/0/data.json"}, "savedAt": "..."}
 * ```
 *
 * Artifacts are named by URI, so a saved TF model stays metadata pointing at its weights, and a
 * pipeline's stages sit in folders of their own. `uri` is an `s3://` prefix or a local
 * directory (a path or a `file://` URI); the same code reads both.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { ServerlessTfError } from "../errors.ts";
import { parseS3Uri } from "../protocol/names.ts";
import type { JobRuntime } from "../runtime/job-runtime.ts";
import { defaultRuntime } from "../runtime/local-runtime.ts";
import { getObject, putObject } from "../storage/objects.ts";

export const STAGE_FORMAT = "serverless-tf/stage";
export const STAGE_FORMAT_VERSION = 1;
export const STAGE_METADATA_OBJECT = "metadata.json";

export interface StageMetadata {
  readonly format: typeof STAGE_FORMAT;
  readonly formatVersion: number;
  readonly stageClass: string;
  readonly params: Readonly<Record<string, unknown>>;
  /** Named artifacts, each by URI (s3:// or a local path). */
  readonly artifacts: Readonly<Record<string, string>>;
  readonly savedAt: string;
}

/** Where a saved stage is read from or written to, and the runtime whose clients reach S3. */
export interface PersistOptions {
  readonly runtime?: JobRuntime;
}

/**
 * A saved stage could not be read: not stage metadata, damaged, or of an unknown class.
 *
 * @example
 * try {
 *   await loadStage("s3://bucket/pipelines/digits/");
 * } catch (e) {
 *   if (e instanceof StageFormatError) console.error(`${e.uri}: ${e.problem}`);
 *   else throw e;
 * }
 */
export class StageFormatError extends ServerlessTfError {
  constructor(
    readonly uri: string,
    readonly problem: string,
  ) {
    super(`cannot load the stage saved at ${uri}: ${problem}`);
  }
}

/**
 * A saved stage was written by a newer serverless-tf (a higher formatVersion than this release reads).
 *
 * @example
 * try {
 *   await PipelineModel.load("s3://bucket/pipelines/digits/");
 * } catch (e) {
 *   if (e instanceof StageVersionError) console.error(`saved with formatVersion ${e.found}; this release reads up to ${e.supported}`);
 *   else throw e;
 * }
 */
export class StageVersionError extends StageFormatError {
  constructor(
    uri: string,
    readonly found: unknown,
    readonly supported: number,
  ) {
    super(uri, `it has formatVersion ${JSON.stringify(found)}, this release reads up to ${supported}. Upgrade serverless-tf to load it, or save it again with this release`);
  }
}

/** `base` + `/` + `name`, for s3:// URIs and local paths alike. */
export function childUri(base: string, name: string): string {
  return `${base.replace(/\/+$/, "")}/${name}`;
}

const isS3 = (uri: string) => uri.startsWith("s3://");
const localPath = (uri: string) => (uri.startsWith("file://") ? fileURLToPath(uri) : uri);

async function clientsFor(options: PersistOptions) {
  return (options.runtime ?? (await defaultRuntime())).deps.clients;
}

/** Writes `text` at `uri` (an S3 object or a local file, its folders made as needed). */
export async function writeText(uri: string, text: string, options: PersistOptions = {}): Promise<void> {
  if (isS3(uri)) {
    await putObject(await clientsFor(options), parseS3Uri(uri, "save uri"), text, { contentType: "application/json" });
    return;
  }
  const path = localPath(uri);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

/** The text at `uri`, or undefined when nothing is there. */
export async function readText(uri: string, options: PersistOptions = {}): Promise<string | undefined> {
  if (isS3(uri)) {
    const found = await getObject(await clientsFor(options), parseS3Uri(uri, "load uri"));
    return found ? Buffer.from(found.body).toString("utf8") : undefined;
  }
  try {
    return await readFile(localPath(uri), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Saves a stage's metadata object under the folder `uri`. */
export async function saveStageMetadata(
  uri: string,
  stage: { readonly stageClass: string; readonly params: Readonly<Record<string, unknown>>; readonly artifacts?: Readonly<Record<string, string>> },
  options: PersistOptions = {},
): Promise<void> {
  const metadata: StageMetadata = {
    format: STAGE_FORMAT,
    formatVersion: STAGE_FORMAT_VERSION,
    stageClass: stage.stageClass,
    params: stage.params,
    artifacts: stage.artifacts ?? {},
    savedAt: new Date().toISOString(),
  };
  await writeText(childUri(uri, STAGE_METADATA_OBJECT), JSON.stringify(metadata, null, 2) + "\n", options);
}

/** Parses and checks stage metadata; `source` names where it came from in errors. */
export function checkStageMetadata(value: unknown, source: string): StageMetadata {
  const m = value as Partial<StageMetadata> | null;
  if (!m || typeof m !== "object" || m.format !== STAGE_FORMAT) {
    throw new StageFormatError(source, `it is not serverless-tf stage metadata (format ${JSON.stringify(m && typeof m === "object" ? m.format : m)}); point at a folder written by save()`);
  }
  if (!Number.isInteger(m.formatVersion) || (m.formatVersion as number) < 1) throw new StageFormatError(source, `formatVersion ${JSON.stringify(m.formatVersion)} is not a positive integer; the file is damaged`);
  if ((m.formatVersion as number) > STAGE_FORMAT_VERSION) throw new StageVersionError(source, m.formatVersion, STAGE_FORMAT_VERSION);
  if (typeof m.stageClass !== "string" || !m.stageClass) throw new StageFormatError(source, `stageClass is ${JSON.stringify(m.stageClass)}, not a class name; the file is damaged`);
  const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(m.params)) throw new StageFormatError(source, `params is ${JSON.stringify(m.params)}, not an object; the file is damaged`);
  if (!isObject(m.artifacts) || !Object.values(m.artifacts!).every((a) => typeof a === "string")) {
    throw new StageFormatError(source, `artifacts is ${JSON.stringify(m.artifacts)}, not an object of URIs; the file is damaged`);
  }
  return m as StageMetadata;
}

/** Reads the metadata of the stage saved under `uri`, checking its class when `expected` is given. */
export async function readStageMetadata(uri: string, options: PersistOptions = {}, expected?: readonly string[]): Promise<StageMetadata> {
  const at = childUri(uri, STAGE_METADATA_OBJECT);
  const text = await readText(at, options);
  if (text === undefined) throw new StageFormatError(uri, `there is no ${STAGE_METADATA_OBJECT} there; save() a stage to that folder first`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new StageFormatError(at, `it is not valid JSON (${(e as Error).message}); the file is damaged`);
  }
  const metadata = checkStageMetadata(json, at);
  if (expected && !expected.includes(metadata.stageClass)) {
    throw new StageFormatError(at, `it holds a ${metadata.stageClass}, not a ${expected.join(" or ")}; load it with the matching class or loadStage()`);
  }
  return metadata;
}

/** The artifact `name` of a saved stage, as JSON. */
export async function readArtifactJson<T>(metadata: StageMetadata, name: string, source: string, options: PersistOptions = {}): Promise<T> {
  const uri = metadata.artifacts[name];
  if (!uri) throw new StageFormatError(source, `artifact ${JSON.stringify(name)} is missing (has: ${Object.keys(metadata.artifacts).join(", ") || "none"}); the file is damaged`);
  const text = await readText(uri, options);
  if (text === undefined) throw new StageFormatError(source, `its artifact ${name} at ${uri} is gone; save the stage again`);
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new StageFormatError(uri, `artifact ${name} is not valid JSON (${(e as Error).message})`);
  }
}
