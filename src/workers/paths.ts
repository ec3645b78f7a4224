import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, "package.json")) || !existsSync(join(dir, "python"))) {
    const parent = dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
  return dir;
}

/** The checkout this code runs from: where `.venv/` and `python/` live. */
export const projectRoot: string = process.env.SERVERLESS_TF_ROOT ?? findRoot(dirname(fileURLToPath(import.meta.url)));

/** The project virtualenv's Python, which has TensorFlow and the worker package. */
export const projectPython: string = process.env.SERVERLESS_TF_PYTHON ?? join(projectRoot, ".venv", "bin", "python");
