/**
 * `npm run demo:pipeline`: a pipeline of a TS StandardScaler, a TF digits classifier on 2
 * workers and a TS ArgMax with a confidence threshold, fitted on the embedded default (moto
 * server, local worker processes), saved to S3, loaded back and reused on held-out rows.
 * `npm run demo:pipeline -- --stack`: the same on the stack as deployed, hosted locally.
 */
import { join } from "node:path";
import { ArgMax, Pipeline, PipelineModel, StandardScaler, Table, TFEstimator } from "../src/index.ts";
import { DIGITS_SCHEMA as schema, demoFile, prepareDigits } from "./digits-data.ts";
import { demoRuntime } from "./runtime.ts";

const accuracyOf = (t: Table, col: string) => {
  const judged = t.rows.filter((r) => BigInt(r[col] as bigint) >= 0n);
  const correct = judged.filter((r) => BigInt(r[col] as bigint) === BigInt(r.label as bigint)).length;
  return { accuracy: correct / t.rows.length, judged: judged.length, correct };
};

async function main(): Promise<void> {
  const started = Date.now();
  const { trainRows, testRows } = prepareDigits(join(process.cwd(), ".tmp", "digits-pipeline"));
  console.log(`digits: ${trainRows.length} training rows, ${testRows.length} held out`);

  const runtime = await demoRuntime();
  try {
    const classifier = new TFEstimator()
      .setWorkerNum(2)
      .setTrainScripts([demoFile("pipeline_model.py")])
      .setTrainHyperParams({ input_col: "pixels", epochs: 20, hidden: 64 })
      .setTrainSelectedCols(["pixels", "label"])
      .setBatchSize(32)
      .setRemainder("pad")
      .setCheckpointEverySteps(50)
      .setInferenceScripts([demoFile("pipeline_model.py")])
      .setInferenceHyperParams({ input_col: "pixels" })
      .setInferenceSelectedCols(["pixels"])
      .setInferenceOutputCols(["logits"])
      .setInferenceOutputTypes(["FLOAT32[10]"])
      .setModelId("digits-pipeline");
    const pipeline = new Pipeline([
      new StandardScaler().setInputCol("pixels").setOutputCol("pixels"),
      classifier,
      new ArgMax().setInputCol("logits").setOutputCol("digit").setThreshold(2.0), // logits under 2: rejected as -1
    ]).withRuntime(runtime);

    console.log("fitting scaler -> TF classifier (2 workers) -> argmax ...");
    const fitted = await pipeline.fit(Table.fromRows(schema, trainRows), {
      onProgress: (p) => {
        if (p.member.index === 0 && p.epoch !== undefined && p.epoch % 5 === 0) console.log(`  epoch ${String(p.epoch).padStart(2)}  loss ${Number(p.loss).toFixed(4)}  accuracy ${Number(p.accuracy).toFixed(4)}`);
      },
    });
    const uri = `s3://${runtime.bucket}/pipelines/digits-${Date.now()}`;
    await fitted.save(uri);
    console.log(`fitted pipeline saved to ${uri}`);

    const loaded = await PipelineModel.load(uri, { runtime });
    console.log(`loaded back: ${loaded.stages.map((s) => s.stageClass).join(" -> ")}`);
    const test = Table.fromRows(schema, testRows);
    const [original, reused] = [await fitted.transform(test), await loaded.transform(test)];
    const same = original.rows.every((r, i) => r.digit === reused.rows[i]!.digit);
    const { accuracy, judged, correct } = accuracyOf(reused, "digit");
    console.log(`held-out accuracy of the loaded pipeline: ${accuracy.toFixed(4)} (${correct}/${testRows.length}; ${testRows.length - judged} rejected under the threshold)`);
    console.log(`loaded and original pipelines agree on every row: ${same}`);
    console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (accuracy < 0.9 || !same) process.exitCode = 1;
  } finally {
    await runtime.close();
  }
}

await main();
