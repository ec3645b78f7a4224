/**
 * A streaming fit of the scale model (y = 3x) on a queue table, as the streaming tests on both
 * runtimes run it: a producer of row messages, and the estimator.
 */
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import type { AwsClients } from "../../src/aws/clients.ts";
import { TFEstimator } from "../../src/index.ts";
import type { JobRuntime } from "../../src/runtime/job-runtime.ts";
import { SCALE_MODEL } from "./models.ts";

/** Sends rows of y = 3x to `queueUrl`, 10 every 50 ms, until `stop()`; resolves once the last send is done. */
export function produceScaleRows(clients: AwsClients, queueUrl: string): { stop(): Promise<void> } {
  let producing = true;
  let n = 0;
  const loop = (async () => {
    while (producing) {
      const entries = Array.from({ length: 10 }, (_, i) => {
        const x = ((n++ % 50) - 25) / 10;
        return { Id: String(i), MessageBody: JSON.stringify({ v: 1, id: `s${n}`, row: { x, y: 3 * x } }) };
      });
      await clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    stop: async () => {
      producing = false;
      await loop;
    },
  };
}

/** One worker (an unbounded feed cannot promise MultiWorkerMirroredStrategy equal step counts), a version every 25 steps. */
export function scaleStreamEstimator(runtime: JobRuntime, modelId: string): TFEstimator {
  return new TFEstimator()
    .withRuntime(runtime)
    .setWorkerNum(1)
    .setTrainScripts([SCALE_MODEL])
    .setTrainEntry("train_stream")
    .setTrainSelectedCols(["x", "y"])
    .setBatchSize(10)
    .setRemainder({ flushAfterMs: 100 })
    .setExportEverySteps(25)
    .setInferenceScripts([SCALE_MODEL])
    .setInferenceEntry("predict")
    .setInferenceSelectedCols(["x"])
    .setInferenceOutputCols(["y"])
    .setInferenceOutputTypes(["FLOAT32"])
    .setModelId(modelId);
}
