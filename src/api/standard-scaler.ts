/**
 * `StandardScaler`: learns each element's mean and standard deviation of a numeric column
 * (scalar or fixed-length list) and scales it to `(x - mean) / std`, in TypeScript, so a
 * pipeline needs no TensorFlow job for this pre-processing.
 */
import type { Column } from "../codec/schema.ts";
import { ConfigError } from "../errors.ts";
import { defineParam, ParamMap, validators, type Param } from "./params.ts";
import { childUri, readArtifactJson, readStageMetadata, saveStageMetadata, StageFormatError, writeText, type PersistOptions } from "./persistence.ts";
import type { Estimator, Model } from "./stage.ts";
import { Table } from "./table.ts";

const bool = (v: unknown, name: string): boolean => {
  if (typeof v !== "boolean") throw new ConfigError(name, v, "true or false");
  return v;
};

export const ScalerParams = {
  inputCol: defineParam("inputCol", "Numeric column to scale: FLOAT32/FLOAT64/INT32/INT64, scalar or fixed list.", "features", validators.string()),
  outputCol: defineParam("outputCol", "Column the scaled values go to (the input column itself is allowed).", "scaled", validators.string()),
  withMean: defineParam("withMean", "Subtract the mean.", true, bool),
  withStd: defineParam("withStd", "Divide by the standard deviation (an element with none is left unscaled).", true, bool),
};
const SCALER_PARAMS = Object.values(ScalerParams) as Param<unknown>[];

/** The learned statistics, one entry per element of the column (one for a scalar). */
export interface ScalerStatistics {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

abstract class ScalerStage {
  readonly params = new ParamMap(SCALER_PARAMS);
  setInputCol(name: string): this { this.params.set(ScalerParams.inputCol, name); return this; }
  setOutputCol(name: string): this { this.params.set(ScalerParams.outputCol, name); return this; }
  setWithMean(on: boolean): this { this.params.set(ScalerParams.withMean, on); return this; }
  setWithStd(on: boolean): this { this.params.set(ScalerParams.withStd, on); return this; }

  protected numericColumn(table: Table): Column {
    const c = table.column(this.params.get(ScalerParams.inputCol));
    if (c.dtype === "STRING" || c.dtype === "BYTES" || c.shape === "var") {
      throw new ConfigError("inputCol", `${c.name} (${c.dtype}${c.shape === "var" ? "[]" : ""})`, "a numeric scalar or fixed-list column");
    }
    return c;
  }

  protected copyParams(to: ScalerStage): void {
    to.params.loadJSON(this.params.toJSON(), "StandardScaler");
  }
}

const width = (c: Column) => (c.shape === "scalar" ? 1 : (c.shape as { fixed: number }).fixed);
const valuesOf = (v: unknown): number[] => (Array.isArray(v) ? v : [v]).map(Number);

/**
 * Learns each element's mean and standard deviation of a numeric column, in TypeScript (no
 * TensorFlow job); its {@link StandardScalerModel} scales the column to `(x - mean) / std`.
 *
 * @example
 * const model = await new StandardScaler().setInputCol("pixels").setOutputCol("pixels").fit(table);
 * const scaled = await model.transform(table);
 */
export class StandardScaler extends ScalerStage implements Estimator<StandardScalerModel> {
  readonly stageClass = "StandardScaler";

  async fit(table: Table): Promise<StandardScalerModel> {
    const column = this.numericColumn(table);
    const n = width(column);
    const sum = new Array<number>(n).fill(0);
    const sumSq = new Array<number>(n).fill(0);
    const rows = table.rows;
    // Two passes (mean, then squared deviations): no catastrophic cancellation on large values.
    for (const row of rows) valuesOf(row[column.name]).forEach((x, i) => (sum[i]! += x));
    const mean = sum.map((s) => (rows.length ? s / rows.length : 0));
    for (const row of rows) valuesOf(row[column.name]).forEach((x, i) => (sumSq[i]! += (x - mean[i]!) ** 2));
    // The sample standard deviation (divides by n - 1).
    const std = sumSq.map((s) => (rows.length > 1 ? Math.sqrt(s / (rows.length - 1)) : 0));
    const model = new StandardScalerModel({ mean, std });
    this.copyParams(model);
    return model;
  }

  async save(uri: string, options: PersistOptions = {}): Promise<void> {
    await saveStageMetadata(uri, { stageClass: this.stageClass, params: this.params.toJSON() }, options);
  }

  static async load(uri: string, options: PersistOptions = {}): Promise<StandardScaler> {
    const metadata = await readStageMetadata(uri, options, ["StandardScaler"]);
    return loadParams(new StandardScaler(), metadata.params, uri);
  }
}

/**
 * A fitted {@link StandardScaler}: its learned statistics, one entry per element of the column.
 *
 * @example
 * const model = new StandardScalerModel({ mean: [2], std: [0.5] }).setInputCol("x").setOutputCol("x_scaled");
 * const scaled = await model.transform(Table.fromRows(schemaOf({ x: "FLOAT32" }), [{ x: 3 }])); // x_scaled: 2
 */
export class StandardScalerModel extends ScalerStage implements Model {
  readonly stageClass = "StandardScalerModel";

  constructor(readonly statistics: ScalerStatistics) {
    super();
  }

  async transform(table: Table): Promise<Table> {
    const column = this.numericColumn(table);
    if (width(column) !== this.statistics.mean.length) {
      throw new ConfigError("inputCol", `${column.name} with ${width(column)} element(s)`, `a column of ${this.statistics.mean.length} element(s), as at fit`);
    }
    const out = this.params.get(ScalerParams.outputCol);
    const { mean, std } = this.statistics;
    const withMean = this.params.get(ScalerParams.withMean);
    const withStd = this.params.get(ScalerParams.withStd);
    const scale = (x: number, i: number) => {
      const centred = withMean ? x - mean[i]! : x;
      return withStd && std[i]! > 0 ? centred / std[i]! : centred;
    };
    const rows = table.rows.map((row) => {
      const v = row[column.name];
      return { ...row, [out]: Array.isArray(v) ? v.map((x, i) => scale(Number(x), i)) : scale(Number(v), 0) };
    });
    // Integers scale to fractions: the output column is a float of the input's shape.
    const outColumn: Column = { name: out, dtype: column.dtype === "FLOAT64" ? "FLOAT64" : "FLOAT32", shape: column.shape };
    return Table.fromRows([...table.schema.filter((c) => c.name !== out), outColumn], rows);
  }

  async save(uri: string, options: PersistOptions = {}): Promise<void> {
    const data = childUri(uri, "statistics.json");
    await writeText(data, JSON.stringify(this.statistics), options);
    await saveStageMetadata(uri, { stageClass: this.stageClass, params: this.params.toJSON(), artifacts: { statistics: data } }, options);
  }

  static async load(uri: string, options: PersistOptions = {}): Promise<StandardScalerModel> {
    const metadata = await readStageMetadata(uri, options, ["StandardScalerModel"]);
    const statistics = await readArtifactJson<ScalerStatistics>(metadata, "statistics", uri, options);
    const ok = (a: unknown) => Array.isArray(a) && a.every((x) => typeof x === "number");
    if (!ok(statistics.mean) || !ok(statistics.std) || statistics.mean.length !== statistics.std.length) {
      throw new StageFormatError(uri, "its statistics artifact lacks equal-length numeric mean and std arrays; the file is damaged");
    }
    return loadParams(new StandardScalerModel(statistics), metadata.params, uri);
  }
}

/** Sets saved params on a fresh stage; a param this release does not know is a format error. */
export function loadParams<S extends { params: ParamMap }>(stage: S, params: Readonly<Record<string, unknown>>, uri: string): S {
  try {
    stage.params.loadJSON(params, uri);
  } catch (e) {
    throw new StageFormatError(uri, `its params are not valid for this release: ${(e as Error).message}`);
  }
  return stage;
}
