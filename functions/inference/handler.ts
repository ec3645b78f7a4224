/**
 * Lambda: SQS-triggered inference (./inference-service.ts). One engine process per warm
 * container, started on the first batch; the model version follows `latest.json`.
 */
import type { Deps } from "../../src/jobs/deps.ts";
import { depsFromEnv } from "../../src/jobs/deps.ts";
import type { FunctionFactories, InferenceSettings, SqsHandler } from "../../src/runtime/functions.ts";
import { PythonEngine } from "./engine.ts";
import { InferenceService } from "./inference-service.ts";
import { inferenceSettingsFromEnv } from "./settings.ts";

/** One served model: the local runtime builds one per `serveModel`, Lambda one per container. */
export function createInferenceFunction(deps: Deps, settings: InferenceSettings, engine: { readonly env: Readonly<Record<string, string>> }, log: (line: string) => void = (line) => console.error(line)): InferenceService {
  return new InferenceService(deps.clients, settings, new PythonEngine({ env: engine.env }), log);
}

let fromEnv: InferenceService | undefined;

export const handler: SqsHandler = (event) => (fromEnv ??= createInferenceFunction(depsFromEnv(), inferenceSettingsFromEnv(), { env: {} })).handle(event);

// The local runtime builds this function through the same factory (src/runtime/functions.ts).
createInferenceFunction satisfies FunctionFactories["inference"]["createInferenceFunction"];
