/**
 * Row-wise transformers in TypeScript, for pre- and post-processing around TF stages:
 * `ArgMax` (a score list to the index of its largest value, with an optional confidence
 * threshold) and `ColumnSelector` (keep the named columns).
 */
import type { Column } from "../codec/schema.ts";
import { ConfigError } from "../errors.ts";
import { defineParam, ParamMap, validators, type Param } from "./params.ts";
import { readStageMetadata, saveStageMetadata, type PersistOptions } from "./persistence.ts";
import type { Transformer } from "./stage.ts";
import { Table } from "./table.ts";
import { loadParams } from "./standard-scaler.ts";

const finite = (v: unknown, name: string): number | null => {
  if (v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(name, v, "a finite number or null");
  return v;
};

export const ArgMaxParams = {
  inputCol: defineParam("inputCol", "Numeric list column (scores, logits or probabilities).", "scores", validators.string()),
  outputCol: defineParam("outputCol", "INT64 column of the index of the largest value.", "prediction", validators.string()),
  threshold: defineParam("threshold", "When set: a row whose largest value is below it gets `rejectValue` instead.", null as number | null, finite),
  rejectValue: defineParam("rejectValue", "The output of a row under the threshold.", -1, validators.int(Number.MIN_SAFE_INTEGER)),
};

/**
 * A score list to the index of its largest value (an INT64 column), with an optional confidence
 * threshold below which a row gets `rejectValue` (-1) instead.
 *
 * @example
 * const labelled = await new ArgMax().setInputCol("logits").setOutputCol("digit").transform(scored);
 */
export class ArgMax implements Transformer {
  readonly stageClass = "ArgMax";
  readonly params = new ParamMap(Object.values(ArgMaxParams) as Param<unknown>[]);
  setInputCol(name: string): this { this.params.set(ArgMaxParams.inputCol, name); return this; }
  setOutputCol(name: string): this { this.params.set(ArgMaxParams.outputCol, name); return this; }
  setThreshold(t: number | null): this { this.params.set(ArgMaxParams.threshold, t); return this; }
  setRejectValue(v: number): this { this.params.set(ArgMaxParams.rejectValue, v); return this; }

  async transform(table: Table): Promise<Table> {
    const input = table.column(this.params.get(ArgMaxParams.inputCol));
    if (input.shape === "scalar" || input.dtype === "STRING" || input.dtype === "BYTES") {
      throw new ConfigError("inputCol", `${input.name} (${input.dtype}, ${JSON.stringify(input.shape)})`, "a numeric list column");
    }
    const out = this.params.get(ArgMaxParams.outputCol);
    const threshold = this.params.get(ArgMaxParams.threshold);
    const reject = BigInt(this.params.get(ArgMaxParams.rejectValue));
    const rows = table.rows.map((row) => {
      const values = (row[input.name] as readonly (number | bigint)[]).map(Number);
      let best = 0;
      for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i; // first index wins a tie, as numpy's argmax
      const keep = values.length > 0 && (threshold === null || values[best]! >= threshold);
      return { ...row, [out]: keep ? BigInt(best) : reject };
    });
    const outColumn: Column = { name: out, dtype: "INT64", shape: "scalar" };
    return Table.fromRows([...table.schema.filter((c) => c.name !== out), outColumn], rows);
  }

  async save(uri: string, options: PersistOptions = {}): Promise<void> {
    await saveStageMetadata(uri, { stageClass: this.stageClass, params: this.params.toJSON() }, options);
  }

  static async load(uri: string, options: PersistOptions = {}): Promise<ArgMax> {
    return loadParams(new ArgMax(), (await readStageMetadata(uri, options, ["ArgMax"])).params, uri);
  }
}

export const SelectorParams = {
  selectedCols: defineParam("selectedCols", "Columns to keep, in this order.", [] as string[], validators.strings(1)),
};

/**
 * Keeps the named columns, in that order.
 *
 * @example
 * const slim = await new ColumnSelector().setSelectedCols(["digit", "label"]).transform(table);
 */
export class ColumnSelector implements Transformer {
  readonly stageClass = "ColumnSelector";
  readonly params = new ParamMap(Object.values(SelectorParams) as Param<unknown>[]);
  setSelectedCols(cols: readonly string[]): this { this.params.set(SelectorParams.selectedCols, cols); return this; }

  async transform(table: Table): Promise<Table> {
    const columns = table.select(this.params.get(SelectorParams.selectedCols));
    return Table.fromRows(columns, table.rows.map((row) => Object.fromEntries(columns.map((c) => [c.name, row[c.name]]))));
  }

  async save(uri: string, options: PersistOptions = {}): Promise<void> {
    await saveStageMetadata(uri, { stageClass: this.stageClass, params: this.params.toJSON() }, options);
  }

  static async load(uri: string, options: PersistOptions = {}): Promise<ColumnSelector> {
    return loadParams(new ColumnSelector(), (await readStageMetadata(uri, options, ["ColumnSelector"])).params, uri);
  }
}
