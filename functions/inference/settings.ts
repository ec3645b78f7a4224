/**
 * Which model a batch is for, and where its results and dead letters go: learned from the queue
 * the batch came from (`stf-serve-<modelId>-input`, src/protocol/names.ts), so one function serves
 * any number of models, each mapped to it by its own event source mapping.
 */
import { GetQueueUrlCommand, QueueDoesNotExist } from "@aws-sdk/client-sqs";
import type { AwsClients } from "../../src/aws/clients.ts";
import { ConfigError } from "../../src/errors.ts";
import type { FunctionConfig } from "../../src/jobs/settings.ts";
import { servedModelOfQueue, servedQueueName } from "../../src/protocol/names.ts";
import type { InferenceSettings } from "../../src/runtime/functions.ts";
import { DEFAULT_RECHECK_MS } from "./latest-model.ts";

/** `SERVERLESS_TF_MODEL_RECHECK_MS`: how often `latest.json` is re-checked; default 5000. */
export function recheckMsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): number {
  const raw = env.SERVERLESS_TF_MODEL_RECHECK_MS;
  const recheck = raw === undefined ? DEFAULT_RECHECK_MS : Number(raw);
  if (!Number.isSafeInteger(recheck) || recheck < 0) throw new ConfigError("SERVERLESS_TF_MODEL_RECHECK_MS", raw, "a non-negative integer of milliseconds");
  return recheck;
}

/**
 * The settings of the model served from `eventSourceArn`.
 *
 * @throws ConfigError when the queue is not a served model's input queue, or its output or DLQ is missing.
 * @example
 * const settings = await servedModelSettings(deps.clients, deps.config, "arn:aws:sqs:us-east-1:123456789012:stf-serve-digits-input", 5000);
 * settings.modelId; // "digits"
 */
export async function servedModelSettings(clients: AwsClients, config: Pick<FunctionConfig, "bucket" | "tableName">, eventSourceArn: string, recheckMs: number): Promise<InferenceSettings> {
  const modelId = servedModelOfQueue(eventSourceArn);
  if (!modelId) {
    throw new ConfigError("eventSourceARN", eventSourceArn, "a served model's input queue, stf-serve-<modelId>-input: serve the model with serveModel or the construct's servedModels prop");
  }
  const urlOf = async (name: string) => {
    try {
      return (await clients.sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl!;
    } catch (e) {
      if (e instanceof QueueDoesNotExist) throw new ConfigError("eventSourceARN", eventSourceArn, `a served model whose queue ${name} exists (serveModel creates all three)`);
      throw e;
    }
  };
  const [outputQueueUrl, dlqUrl] = await Promise.all([urlOf(servedQueueName.output(modelId)), urlOf(servedQueueName.dlq(modelId))]);
  return { bucket: config.bucket, tableName: config.tableName, modelId, outputQueueUrl, dlqUrl, recheckMs };
}
