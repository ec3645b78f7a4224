import assert from "node:assert/strict";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadStage, Pipeline, PipelineModel } from "../../../src/api/pipeline.ts";
import { StageFormatError, StageVersionError } from "../../../src/api/persistence.ts";
import type { Estimator, Model } from "../../../src/api/stage.ts";
import { StandardScaler, StandardScalerModel } from "../../../src/api/standard-scaler.ts";
import { ArgMax, ColumnSelector } from "../../../src/api/transformers.ts";
import { schemaOf, Table } from "../../../src/api/table.ts";
import { ConfigError } from "../../../src/errors.ts";

const schema = schemaOf({ x: "FLOAT32[3]", n: "INT64", scores: "FLOAT32[3]" });
const rows = [
  { x: [1, 10, 5], n: 1n, scores: [0.1, 0.7, 0.2] },
  { x: [3, 10, 7], n: 2n, scores: [0.5, 0.3, 0.2] },
  { x: [5, 10, 9], n: 3n, scores: [0.2, 0.2, 0.6] },
];
const table = () => Table.fromRows(schema, rows);
const tmp = () => mkdtemp(join(tmpdir(), "stf-pipeline-"));

/** A toy estimator (Flink ML's test habit): records the tables it was fitted on; its model adds `seen`. */
class RecordingEstimator implements Estimator<Model> {
  readonly stageClass = "RecordingEstimator";
  readonly fittedOn: string[][] = [];
  constructor(readonly tag: string) {}
  async fit(t: Table): Promise<Model> {
    this.fittedOn.push(t.schema.map((c) => c.name));
    const tag = this.tag;
    return {
      stageClass: "RecordingModel",
      save: async () => undefined,
      transform: async (input: Table) => Table.fromRows([...input.schema, { name: tag, dtype: "INT64", shape: "scalar" }], input.rows.map((r) => ({ ...r, [tag]: 1n }))),
    };
  }
  async save(): Promise<void> {}
}

describe("StandardScaler", () => {
  it("scales each element of a fixed list to zero mean and unit sample deviation, leaving constant elements centred", async () => {
    const model = await new StandardScaler().setInputCol("x").setOutputCol("xs").fit(table());
    const out = await model.transform(table());
    assert.deepEqual(model.statistics, { mean: [3, 10, 7], std: [2, 0, 2] });
    assert.deepEqual(out.rows.map((r) => r.xs), [[-1, 0, -1], [0, 0, 0], [1, 0, 1]]);
    assert.deepEqual(out.column("xs"), { name: "xs", dtype: "FLOAT32", shape: { fixed: 3 } });
  });

  it("scales an INT64 scalar into a FLOAT32 column", async () => {
    const out = await (await new StandardScaler().setInputCol("n").setOutputCol("n").fit(table())).transform(table());
    assert.deepEqual(out.rows.map((r) => r.n), [-1, 0, 1]);
    assert.equal(out.column("n").dtype, "FLOAT32");
  });

  it("refuses a string column, naming it", async () => {
    const t = Table.fromRows(schemaOf({ s: "STRING" }), [{ s: "a" }]);
    await assert.rejects(new StandardScaler().setInputCol("s").fit(t), (e: unknown) => e instanceof ConfigError && /inputCol/.test(e.message) && /s \(STRING\)/.test(e.message));
  });
});

describe("ArgMax and ColumnSelector", () => {
  it("picks the index of the largest score, and the reject value under the threshold", async () => {
    const out = await new ArgMax().setInputCol("scores").setOutputCol("k").setThreshold(0.55).transform(table());
    assert.deepEqual(out.rows.map((r) => r.k), [1n, -1n, 2n]);
    assert.deepEqual(out.column("k"), { name: "k", dtype: "INT64", shape: "scalar" });
  });

  it("keeps only the selected columns, in the order given", async () => {
    const out = await new ColumnSelector().setSelectedCols(["n", "x"]).transform(table());
    assert.deepEqual(out.schema.map((c) => c.name), ["n", "x"]);
    assert.deepEqual(out.rows[0], { n: 1n, x: [1, 10, 5] });
  });
});

describe("Pipeline", () => {
  it("fits each estimator on the table transformed by the stages before it, and transforms no further than the last estimator", async () => {
    const first = new RecordingEstimator("a");
    const second = new RecordingEstimator("b");
    const fitted = await new Pipeline([first, new ColumnSelector().setSelectedCols(["x", "a"]), second, new ArgMax().setInputCol("x").setOutputCol("k")]).fit(table());
    assert.deepEqual(first.fittedOn, [["x", "n", "scores"]]);
    assert.deepEqual(second.fittedOn, [["x", "a"]]);
    const out = await fitted.transform(table());
    assert.deepEqual(out.schema.map((c) => c.name), ["x", "a", "b", "k"]);
    assert.deepEqual(out.rows.map((r) => r.k), [1n, 1n, 1n]);
  });

  it("refuses a stage that can neither fit nor transform", () => {
    assert.throws(() => new Pipeline([{ stageClass: "Nothing", save: async () => undefined }]), (e: unknown) => e instanceof ConfigError && /pipeline stage 0/.test(e.message));
  });
});

describe("save and load", () => {
  it("a loaded pipeline model transforms the same input to the same output, bit for bit", async () => {
    const fitted = await new Pipeline([new StandardScaler().setInputCol("x").setOutputCol("x"), new ArgMax().setInputCol("x").setOutputCol("k")]).fit(table());
    const dir = await tmp();
    await fitted.save(dir);
    const loaded = await PipelineModel.load(dir);
    const [a, b] = [await fitted.transform(table()), await loaded.transform(table())];
    assert.deepEqual(b.schema, a.schema);
    const bits = (t: Table) => t.rows.map((r) => Buffer.from(new Float64Array(r.x as number[]).buffer).toString("hex"));
    assert.deepEqual(bits(b), bits(a));
    assert.deepEqual(b.rows, a.rows);
    assert.ok(loaded.stages[0] instanceof StandardScalerModel);
  });

  it("saves an unfitted pipeline with its params and loads it back by class", async () => {
    const dir = await tmp();
    await new Pipeline([new StandardScaler().setInputCol("x").setWithMean(false), new ColumnSelector().setSelectedCols(["scaled"])]).save(dir);
    const loaded = await loadStage(dir);
    assert.ok(loaded instanceof Pipeline);
    const scaler = loaded.stages[0] as StandardScaler;
    assert.deepEqual(scaler.params.toJSON(), { inputCol: "x", outputCol: "scaled", withMean: false, withStd: true });
    const metadata = JSON.parse(await readFile(join(dir, "metadata.json"), "utf8"));
    assert.equal(metadata.format, "serverless-tf/stage");
    assert.deepEqual(metadata.params.stageClasses, ["StandardScaler", "ColumnSelector"]);
  });

  it("a file written by a newer release fails with StageVersionError naming both versions", async () => {
    const dir = await tmp();
    await new ArgMax().save(dir);
    const path = join(dir, "metadata.json");
    await writeFile(path, (await readFile(path, "utf8")).replace('"formatVersion": 1', '"formatVersion": 2'));
    await assert.rejects(loadStage(dir), (e: unknown) => e instanceof StageVersionError && e.found === 2 && /reads up to 1/.test(e.message) && /Upgrade/.test(e.message));
  });

  it("a broken file fails with StageFormatError saying what is wrong", async () => {
    const dir = await tmp();
    await new ArgMax().save(dir);
    const path = join(dir, "metadata.json");
    const good = await readFile(path, "utf8");
    await writeFile(path, good.slice(0, 40));
    await assert.rejects(ArgMax.load(dir), (e: unknown) => e instanceof StageFormatError && /not valid JSON/.test(e.message));
    await writeFile(path, good.replace('"stageClass": "ArgMax"', '"stageClass": "Mystery"'));
    await assert.rejects(loadStage(dir), (e: unknown) => e instanceof StageFormatError && /Mystery/.test(e.message));
    await writeFile(path, good.replace('"threshold": null', '"threshold": "high"'));
    await assert.rejects(ArgMax.load(dir), (e: unknown) => e instanceof StageFormatError && /threshold/.test(e.message));
    await assert.rejects(StandardScaler.load(join(dir, "nowhere")), (e: unknown) => e instanceof StageFormatError && /no metadata.json/.test(e.message));
  });
});
