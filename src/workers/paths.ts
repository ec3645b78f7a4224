import { existsSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
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

/** The checkout (or installed package) this code runs from: where `python/` (and in a checkout `.venv/`) live. */
export const projectRoot: string = process.env.SERVERLESS_TF_ROOT ?? findRoot(dirname(fileURLToPath(import.meta.url)));

/**
 * The Python that runs workers and the engine: `SERVERLESS_TF_PYTHON` (an installed package: a
 * Python with the packages of `python/requirements.lock`), else the checkout's virtualenv.
 */
export const projectPython: string = process.env.SERVERLESS_TF_PYTHON ?? join(projectRoot, ".venv", "bin", "python");

/**
 * What a Python child of this package adds to its environment: the worker runtime this package
 * ships (`python/serverless_tf`) first on its path, so the code that runs is the code installed.
 */
export function pythonChildEnv(env: Readonly<Record<string, string | undefined>> = process.env): Record<string, string> {
  const shipped = join(projectRoot, "python");
  return { PYTHONPATH: env.PYTHONPATH ? `${shipped}${delimiter}${env.PYTHONPATH}` : shipped, PYTHONUNBUFFERED: "1", TF_CPP_MIN_LOG_LEVEL: "2" };
}
