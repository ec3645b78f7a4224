/** A job's Python scripts in S3: local paths uploaded to the job's code prefix, s3:// URIs kept as they are. */
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import type { AwsClients } from "../aws/clients.ts";
import { ConfigError } from "../errors.ts";
import { jobKeys, s3Uri } from "../protocol/names.ts";
import { putObject } from "../storage/objects.ts";

/**
 * @throws ConfigError naming a script that cannot be read.
 * @example
 * await uploadScripts(clients, "fit-2f9c1a", "artifacts", ["demo/digits_model.py"]); // ["s3://artifacts/jobs/fit-2f9c1a/code/digits_model.py"]
 */
export async function uploadScripts(clients: AwsClients, jobId: string, bucket: string, scripts: readonly string[]): Promise<string[]> {
  return Promise.all(
    scripts.map(async (script) => {
      if (script.startsWith("s3://")) return script;
      let body: Buffer;
      try {
        body = await readFile(script);
      } catch (e) {
        throw new ConfigError("scripts", script, `a readable Python file (${(e as Error).message})`);
      }
      const at = { bucket, key: jobKeys.code(jobId, basename(script)) };
      await putObject(clients, at, body, { contentType: "text/x-python" });
      return s3Uri(at);
    }),
  );
}
