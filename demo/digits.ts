/**
 * `npm run demo`: trains a digits classifier on 2 TensorFlow workers fed through SQS, on the
 * embedded default (moto server, local worker processes), then scores the held-out rows and
 * streams some through the inference function. `npm run demo -- --stack`: the same program on the
 * stack as deployed, hosted locally (./runtime.ts).
 */
import { readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { InferenceClient, Table, TFEstimator } from "../src/index.ts";
import { DIGITS_SCHEMA as schema, demoFile, prepareDigits } from "./digits-data.ts";
import { demoRuntime } from "./runtime.ts";

async function main(): Promise<void> {
  const started = Date.now();
  const { trainFiles, trainRows, testRows } = prepareDigits(join(process.cwd(), ".tmp", "digits"), 3);
  console.log(`digits: ${trainRows.length} training rows in ${trainFiles.length} JSON Lines objects, ${testRows.length} held out`);

  const runtime = await demoRuntime();
  try {
    const prefix = `datasets/digits-${Date.now()}/train/`;
    for (const file of trainFiles) await runtime.upload(prefix + basename(file), readFileSync(file));
    const trainTable = Table.fromS3(`s3://${runtime.bucket}/${prefix}`, schema);

    const estimator = new TFEstimator()
      .withRuntime(runtime)
      .setWorkerNum(2)
      .setTrainScripts([demoFile("digits_model.py")])
      .setTrainEntry("train")
      .setTrainHyperParams({ epochs: 30, hidden: 64, learning_rate: 0.005 })
      .setTrainSelectedCols(["pixels", "label"])
      .setBatchSize(32)
      .setRemainder("pad")
      .setInferenceScripts([demoFile("digits_model.py")])
      .setInferenceEntry("predict")
      .setInferenceSelectedCols(["pixels"])
      .setInferenceOutputCols(["digit", "score"])
      .setInferenceOutputTypes(["INT64", "FLOAT32"])
      .setModelId("digits");

    console.log("fitting on 2 workers (MultiWorkerMirroredStrategy) ...");
    const model = await estimator.fit(trainTable, {
      onProgress: (p) => {
        if (p.member.index !== 0 || p.epoch === undefined) return;
        const fmt = (v: unknown, digits: number) => (typeof v === "number" ? v.toFixed(digits) : "?");
        console.log(`  epoch ${String(p.epoch).padStart(2)}  loss ${fmt(p.loss, 4)}  accuracy ${fmt(p.accuracy, 4)}  ${fmt(p.examples_per_sec, 0)} examples/s`);
      },
    });
    console.log(`model ${model.metadata.modelId} version ${model.metadata.version}`);
    console.log(`  metadata  ${model.metadataUri}`);
    console.log(`  weights   ${model.metadata.artifactUri}`);

    const scored = await model.transform(Table.fromRows(schema, testRows));
    const correct = scored.rows.filter((r) => BigInt(r.digit as bigint) === BigInt(r.label as number)).length;
    const accuracy = correct / scored.rows.length;
    console.log(`held-out accuracy: ${accuracy.toFixed(4)} (${correct}/${scored.rows.length}), bar 0.95`);

    // Streaming: the SQS inference function, one held-out row at a time, each result printed as it arrives.
    const served = await runtime.serveModel("digits");
    try {
      const client = new InferenceClient(runtime.deps.clients, served.inputQueueUrl, served.outputQueueUrl);
      const warmStart = Date.now();
      await client.send("warm-up", { pixels: testRows[0]!.pixels });
      await client.result("warm-up", 120_000);
      console.log(`streaming 20 held-out rows through the inference function (engine started in ${Date.now() - warmStart} ms) ...`);
      const latencies: number[] = [];
      for (let i = 0; i < 20; i++) {
        const row = testRows[i]!;
        const sentAt = await client.send(`row-${i}`, { pixels: row.pixels });
        const result = await client.result(`row-${i}`);
        latencies.push(result.receivedAt - sentAt);
        console.log(`  row-${String(i).padEnd(2)} digit ${result.row.digit} (label ${String(row.label)})  score ${Number(result.row.score).toFixed(3)}  ${latencies.at(-1)} ms  version ${result.version}`);
      }
      const sorted = [...latencies].sort((a, b) => a - b);
      console.log(`streaming latency send -> result: p50 ${sorted[9]} ms, p99 ${sorted[19]} ms`);
    } finally {
      await served.stop();
    }
    console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (accuracy < 0.95) process.exitCode = 1;
  } finally {
    await runtime.close();
  }
}

await main();
