/**
 * Lambda: SQS-triggered inference (src/inference). One engine process per warm container,
 * started on the first batch; the model version follows `latest.json`.
 */
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { PythonEngine } from "./engine.ts";
import { inferenceSettingsFromEnv } from "./settings.ts";
import { InferenceService, type InferenceSettings } from "./inference-service.ts";
import { stageDeps } from "../../src/jobs/deps-from-env.ts";

/** A handler for one served model; the local runtime builds one per `serveModel`. */
export function createInferenceHandler(settings: InferenceSettings, service = new InferenceService(stageDeps().clients, settings, new PythonEngine())): ((event: SQSEvent) => Promise<SQSBatchResponse>) & { service: InferenceService } {
  return Object.assign((event: SQSEvent) => service.handle(event), { service });
}

let fromEnv: ReturnType<typeof createInferenceHandler> | undefined;

export const handler = (event: SQSEvent): Promise<SQSBatchResponse> => (fromEnv ??= createInferenceHandler(inferenceSettingsFromEnv()))(event);
