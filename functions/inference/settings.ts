/** The inference function's configuration, read once from its environment and checked. */
import { ConfigError } from "../../src/errors.ts";
import { functionConfigFromEnv } from "../../src/jobs/settings.ts";
import type { InferenceSettings } from "../../src/runtime/functions.ts";
import { DEFAULT_RECHECK_MS } from "./latest-model.ts";
import { MODEL_ID_PATTERN } from "../../src/protocol/names.ts";

function queueUrl(env: Readonly<Record<string, string | undefined>>, name: string): string {
  const v = env[name];
  if (!v || !/^https?:\/\//.test(v)) throw new ConfigError(name, v, "an SQS queue URL");
  return v;
}

/**
 * `SERVERLESS_TF_MODEL_ID`, `SERVERLESS_TF_OUTPUT_QUEUE_URL`, `SERVERLESS_TF_DLQ_URL`,
 * `SERVERLESS_TF_MODEL_RECHECK_MS` (default 5000) and the bucket and registry table of every stage
 * (the table holds the idempotency record of each served row).
 */
export function inferenceSettingsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): InferenceSettings {
  const modelId = env.SERVERLESS_TF_MODEL_ID;
  if (!modelId || !MODEL_ID_PATTERN.test(modelId)) throw new ConfigError("SERVERLESS_TF_MODEL_ID", modelId, "a model id (lowercase letters, digits and dashes)");
  const recheck = env.SERVERLESS_TF_MODEL_RECHECK_MS === undefined ? DEFAULT_RECHECK_MS : Number(env.SERVERLESS_TF_MODEL_RECHECK_MS);
  if (!Number.isSafeInteger(recheck) || recheck < 0) throw new ConfigError("SERVERLESS_TF_MODEL_RECHECK_MS", env.SERVERLESS_TF_MODEL_RECHECK_MS, "a non-negative integer of milliseconds");
  const stage = functionConfigFromEnv(env);
  return {
    bucket: stage.bucket,
    tableName: stage.tableName,
    modelId,
    outputQueueUrl: queueUrl(env, "SERVERLESS_TF_OUTPUT_QUEUE_URL"),
    dlqUrl: queueUrl(env, "SERVERLESS_TF_DLQ_URL"),
    recheckMs: recheck,
  };
}
