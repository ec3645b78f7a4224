/**
 * Fit time to accuracy: the digits demo's fit on 2 workers through the stages (S3 table,
 * shard-feed, SQS, MultiWorkerMirroredStrategy), from `fit()` to a published model, against
 * plain Keras `model.fit` in one process on the same rows with the same model, epochs and batch
 * size, timed from its process start to the first epoch at 0.95 held-out accuracy. Both include
 * TensorFlow's start-up. The served model's held-out accuracy (through `transform`) is checked
 * against the same bar.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Table, TFEstimator } from "../src/index.ts";
import { projectPython, projectRoot } from "../src/workers/paths.ts";
import { DIGITS_SCHEMA, demoFile, prepareDigits } from "../demo/digits-data.ts";
import { ratioGoal, type BenchContext, type Measurement } from "./measurement.ts";

const EPOCHS = 30;
const BATCH = 32;

export async function benchFit(ctx: BenchContext): Promise<Measurement[]> {
  const runtime = await ctx.runtime();
  const dir = mkdtempSync(join(tmpdir(), "stf-bench-fit-"));
  const { trainRows, testRows } = prepareDigits(dir);
  const plain = spawnSync(projectPython, [join(projectRoot, "bench/scripts/fit_baseline.py"), dir, String(EPOCHS), String(BATCH)], { encoding: "utf8", env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2" } });
  if (plain.status !== 0) throw new Error(`the plain Keras baseline failed:\n${plain.stderr.slice(-2000)}`);
  const baseline = JSON.parse(plain.stdout.trim().split("\n").at(-1)!) as { toAccuracySeconds: number | null; seconds: number; accuracy: number };
  if (baseline.toAccuracySeconds === null) throw new Error(`plain Keras never reached 0.95 held-out accuracy (${baseline.accuracy})`);

  const started = Date.now();
  const model = await new TFEstimator()
    .withRuntime(runtime)
    .setWorkerNum(2)
    .setTrainScripts([demoFile("digits_model.py")])
    .setTrainHyperParams({ epochs: EPOCHS, hidden: 64, learning_rate: 0.005 })
    .setTrainSelectedCols(["pixels", "label"])
    .setBatchSize(BATCH)
    .setRemainder("pad")
    .setInferenceScripts([demoFile("digits_model.py")])
    .setInferenceSelectedCols(["pixels"])
    .setInferenceOutputCols(["digit", "score"])
    .setInferenceOutputTypes(["INT64", "FLOAT32"])
    .setModelId(`bench-fit-${Date.now().toString(36)}`)
    .fit(Table.fromRows(DIGITS_SCHEMA, trainRows));
  const seconds = (Date.now() - started) / 1000;
  const scored = await model.transform(Table.fromRows(DIGITS_SCHEMA, testRows));
  const accuracy = scored.rows.filter((r) => BigInt(r.digit as bigint) === BigInt(r.label as bigint)).length / scored.rows.length;
  ctx.log(
    `fit: digits, ${EPOCHS} epochs, batch ${BATCH}: 2 workers ${seconds.toFixed(1)} s to a published model (held-out accuracy ${accuracy.toFixed(4)}); ` +
      `plain Keras ${baseline.toAccuracySeconds.toFixed(1)} s to 0.95 held-out, ${baseline.seconds.toFixed(1)} s for all ${EPOCHS} epochs (accuracy ${baseline.accuracy.toFixed(4)})`,
  );
  if (accuracy < 0.95) throw new Error(`the fitted model's held-out accuracy ${accuracy} is under the bar 0.95: the time to accuracy is not measured`);
  return [
    {
      name: "fit time to 0.95 held-out accuracy, digits, 2 workers",
      value: seconds,
      unit: "s",
      baseline: { name: "plain Keras model.fit in one process, same rows", value: baseline.toAccuracySeconds },
      higherIsBetter: false,
      goal: ratioGoal({ max: 3, stretch: 1.5 }),
    },
  ];
}
