/**
 * scikit-learn's handwritten digits (shipped inside the package, nothing downloaded), written by
 * demo/prepare_digits.py as JSON Lines and read back as typed rows: the one loader for the demos,
 * the tests and the soak.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Row } from "../src/codec/schema.ts";
import { schemaOf } from "../src/api/table.ts";
import { parseJsonLines } from "../src/codec/table-rows.ts";
import { projectPython, projectRoot } from "../src/workers/paths.ts";

export const DIGITS_SCHEMA = schemaOf({ pixels: "FLOAT32[64]", label: "INT64" });

export interface DigitsData {
  /** The JSON Lines files of the training split, `trainParts` of them. */
  readonly trainFiles: readonly string[];
  readonly trainRows: readonly Row[];
  readonly testRows: readonly Row[];
}

export function prepareDigits(dir: string, trainParts = 1): DigitsData {
  const prepared = spawnSync(projectPython, ["demo/prepare_digits.py", dir, "--train-parts", String(trainParts)], { cwd: projectRoot, encoding: "utf8" });
  if (prepared.status !== 0) throw new Error(`preparing the digits failed:\n${prepared.stderr}`);
  const read = (file: string): Row[] => parseJsonLines(readFileSync(file, "utf8"), DIGITS_SCHEMA);
  const trainFiles = readdirSync(dir).filter((f) => f.startsWith("train-")).sort().map((f) => join(dir, f));
  return { trainFiles, trainRows: trainFiles.flatMap(read), testRows: read(join(dir, "test.jsonl")) };
}
