/**
 * A script-mode version's files on local disk: the SavedModel under `artifactUri` and the
 * inference scripts, downloaded by the function before the engine loads them. The engine runs
 * user code, so it gets the files and no credentials (./engine.ts `engineEnvironment`).
 *
 * Layout: `<root>/<modelId>/<version>/artifact/...` and `.../code/<folder>/<script>`, where scripts
 * of one S3 folder share one local folder, so they import each other as they would on a worker
 * (python/serverless_tf/worker/user_code.py `download_scripts`).
 */
import { createHash } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import type { AwsClients } from "../../src/aws/clients.ts";
import { parseS3Uri } from "../../src/protocol/names.ts";
import type { ModelMetadata } from "../../src/protocol/model-metadata.ts";
import { getObject, listKeys } from "../../src/storage/objects.ts";
import { EngineError } from "./engine-error.ts";

export interface StagedVersion {
  readonly artifactDir: string;
  readonly scriptFiles: readonly string[];
  /** Removes the files (the engine has loaded the version, or a newer one replaced it). */
  remove(): Promise<void>;
}

async function download(clients: AwsClients, uri: string, file: string): Promise<void> {
  const object = await getObject(clients, parseS3Uri(uri, "model file"));
  if (!object) throw new EngineError(`${uri} is missing; the model version cannot be served. Re-export the model.`);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, object.body);
}

/** Downloads `metadata`'s SavedModel and inference scripts under `root`. */
export async function stageVersion(clients: AwsClients, metadata: ModelMetadata, root: string): Promise<StagedVersion> {
  const inference = metadata.inference;
  if (!inference) throw new EngineError(`model ${metadata.modelId} version ${metadata.version} has no inference config: set inference scripts and output columns on the estimator before fit`);
  const dir = join(root, metadata.modelId, metadata.version);
  await rm(dir, { recursive: true, force: true });
  const artifact = parseS3Uri(metadata.artifactUri, "metadata artifactUri");
  const keys = await listKeys(clients, artifact);
  if (!keys.length) throw new EngineError(`no SavedModel under ${metadata.artifactUri} for model ${metadata.modelId} version ${metadata.version}; check that the export finished`);
  const artifactDir = join(dir, "artifact");
  await Promise.all(keys.map((k) => download(clients, `s3://${artifact.bucket}/${k.key}`, join(artifactDir, ...posix.relative(artifact.key, k.key).split("/")))));
  const scriptFiles = inference.python.scripts.map((uri, i) => {
    const key = parseS3Uri(uri, "inference script").key;
    const folder = createHash("sha1").update(uri.slice(0, uri.lastIndexOf("/"))).digest("hex").slice(0, 12);
    return { uri, file: join(dir, "code", folder, posix.basename(key) || `script_${i}.py`) };
  });
  await Promise.all(scriptFiles.map((s) => download(clients, s.uri, s.file)));
  return { artifactDir, scriptFiles: scriptFiles.map((s) => s.file), remove: () => rm(dir, { recursive: true, force: true }) };
}
