/** Event-triggered training on the local runtime: each new object under `training/` fits a `TFEstimator` (functions/coordinator/fit-trigger.ts). */
import type { LocalRuntime } from "../runtime/local-runtime.ts";
import { TFEstimator } from "./estimator.ts";
import { Table } from "./table.ts";

/**
 * Starts a fit for each new data object under the runtime's training prefix, with the params of
 * the `_fit.json` beside it; returns the stop. Each fit runs to its end in the background and
 * logs its outcome; a start that cannot be registered is reported to the trigger.
 *
 * @example
 * const stop = startFitTriggers(runtime);
 * // put training/day1/_fit.json, then training/day1/data.jsonl: a fit starts
 * await stop();
 */
export function startFitTriggers(runtime: LocalRuntime, log: (line: string) => void = (line) => console.error(line)): () => Promise<void> {
  return runtime.runFitTriggers(
    (fit) =>
      new Promise<void>((resolve, reject) => {
        const estimator = new TFEstimator().withRuntime(runtime);
        estimator.params.loadJSON(fit.params, "fit trigger");
        let started = false;
        estimator
          .fit(Table.fromS3(fit.table.uri, [...fit.table.columns], fit.table.format), { jobId: fit.jobId, onStarted: () => ((started = true), resolve()) })
          .then(
            (model) => log(`[fit-trigger] job ${fit.jobId} published ${model.metadata.modelId} version ${model.metadata.version}`),
            (e: unknown) => (started ? log(`[fit-trigger] job ${fit.jobId} failed: ${(e as Error).message}`) : reject(e)),
          );
      }),
  );
}
