/** Where each soak test leaves its figures (JSON) for the runner's table (test/soak/run.ts). */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../../src/workers/paths.ts";

export const SOAK_FIGURES_DIR = join(projectRoot, ".tmp", "soak");

export function recordSoakFigures(name: string, figures: Record<string, unknown>): void {
  mkdirSync(SOAK_FIGURES_DIR, { recursive: true });
  writeFileSync(join(SOAK_FIGURES_DIR, `${name}.json`), JSON.stringify(figures, null, 2));
}
