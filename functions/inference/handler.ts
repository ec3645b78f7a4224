/**
 * Lambda: SQS-triggered inference (./inference-service.ts). A batch comes from one served model's
 * input queue; the model, its output queue and its DLQ follow from that queue's name
 * (./settings.ts). One service per model a warm container has served; its engine (a Python
 * process for script mode, an ONNX Runtime session for signature mode, ./serving-engines.ts)
 * starts on its first batch; the model version follows `latest.json`.
 */
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import type { Deps } from "../../src/jobs/deps.ts";
import { depsFromEnv } from "../../src/jobs/deps.ts";
import type { FunctionFactories, InferenceSettings, SqsHandler } from "../../src/runtime/functions.ts";
import { PythonEngine } from "./engine.ts";
import { InferenceService } from "./inference-service.ts";
import { OnnxEngine } from "./onnx-engine.ts";
import { ServingEngines } from "./serving-engines.ts";
import { recheckMsFromEnv, servedModelSettings } from "./settings.ts";

/** One served model: the local runtime builds one per `serveModel`, Lambda one per model a container serves. */
export function createInferenceFunction(deps: Deps, settings: InferenceSettings, log: (line: string) => void = (line) => console.error(line)): InferenceService {
  const engines = new ServingEngines({ script: () => new PythonEngine(deps.clients), signature: () => new OnnxEngine(deps.clients) });
  return new InferenceService(deps.clients, settings, engines, log);
}

let container: { readonly deps: ReturnType<typeof depsFromEnv>; readonly recheckMs: number } | undefined;
const services = new Map<string, Promise<InferenceService>>();

function serviceFor(arn: string): Promise<InferenceService> {
  let service = services.get(arn);
  if (!service) {
    container ??= { deps: depsFromEnv(), recheckMs: recheckMsFromEnv() };
    const { deps, recheckMs } = container;
    service = servedModelSettings(deps.clients, deps.config, arn, recheckMs).then((settings) => createInferenceFunction(deps, settings));
    // A failed lookup (a queue not created yet) is tried again on the next batch.
    service.catch(() => services.delete(arn));
    services.set(arn, service);
  }
  return service;
}

export const handler: SqsHandler = async (event: SQSEvent, context): Promise<SQSBatchResponse> => {
  // An event source mapping reads one queue, so a batch has one source; grouping keeps a direct
  // invocation with mixed records correct too.
  const bySource = new Map<string, SQSEvent["Records"]>();
  for (const r of event.Records) bySource.set(r.eventSourceARN, [...(bySource.get(r.eventSourceARN) ?? []), r]);
  const responses = await Promise.all([...bySource].map(async ([arn, Records]) => (await serviceFor(arn)).handle({ Records }, context)));
  return { batchItemFailures: responses.flatMap((r) => r.batchItemFailures) };
};

// The local runtime builds this function through the same factory (src/runtime/functions.ts).
createInferenceFunction satisfies FunctionFactories["inference"]["createInferenceFunction"];
