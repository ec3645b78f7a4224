/**
 * scikit-learn's handwritten digits (shipped inside scikit-learn, nothing downloaded), written by
 * prepare_digits.py beside this file as JSON Lines and read back as typed rows: the one loader
 * for the demos, the tests and the soak (`serverless-tf/demo` in the installed package).
 */
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { rowsFromJsonLines, schemaOf, workerPython, type Row } from "../src/index.ts";

export const DIGITS_SCHEMA = schemaOf({ pixels: "FLOAT32[64]", label: "INT64" });

/** A file of the demo, beside this module (the build copies the Python files next to the compiled one). */
export const demoFile = (name: string): string => fileURLToPath(new URL(`./${name}`, import.meta.url));

export interface DigitsData {
  /** The JSON Lines files of the training split, `trainParts` of them. */
  readonly trainFiles: readonly string[];
  readonly trainRows: readonly Row[];
  readonly testRows: readonly Row[];
}

/**
 * @example
 * const { trainRows, testRows } = prepareDigits(".tmp/digits");
 */
export function prepareDigits(dir: string, trainParts = 1): DigitsData {
  const prepared = spawnSync(workerPython, [demoFile("prepare_digits.py"), dir, "--train-parts", String(trainParts)], { encoding: "utf8" });
  if (prepared.status !== 0) throw new Error(`preparing the digits failed:\n${prepared.stderr}`);
  const read = (file: string): Row[] => rowsFromJsonLines(readFileSync(file, "utf8"), DIGITS_SCHEMA);
  const trainFiles = readdirSync(dir).filter((f) => f.startsWith("train-")).sort().map((f) => join(dir, f));
  return { trainFiles, trainRows: trainFiles.flatMap(read), testRows: read(join(dir, "test.jsonl")) };
}
