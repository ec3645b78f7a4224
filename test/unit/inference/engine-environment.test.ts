/**
 * The Python engine's process: what of the function's environment it gets (never credentials or
 * stack settings), and what a function without Python says when a script-mode model reaches it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { engineEnvironment } from "../../../functions/inference/engine.ts";
import { projectRoot } from "../../../src/workers/paths.ts";

describe("the Python inference engine's process", () => {
  it("gets the system, Python and TensorFlow settings of the function's environment, and no credential or stack setting", () => {
    const env = engineEnvironment({
      PATH: "/usr/bin",
      HOME: "/home/sbx_user1051",
      TF_NUM_INTEROP_THREADS: "1",
      KERAS_HOME: "/tmp/.keras",
      AWS_ACCESS_KEY_ID: "ASIA...",
      AWS_SECRET_ACCESS_KEY: "secret",
      AWS_SESSION_TOKEN: "token",
      AWS_LAMBDA_FUNCTION_NAME: "stf-inference",
      SERVERLESS_TF_TABLE: "stf-registry",
      SERVERLESS_TF_BUCKET: "stf-artifacts",
    });
    assert.equal(env.PATH, "/usr/bin");
    assert.equal(env.TF_NUM_INTEROP_THREADS, "1");
    assert.equal(env.KERAS_HOME, "/tmp/.keras");
    assert.ok(env.PYTHONPATH?.endsWith("python"), "the shipped worker package is on its path");
    assert.deepEqual(Object.keys(env).filter((k) => k.startsWith("AWS_") || k.startsWith("SERVERLESS_TF_")), []);
  });

  it("fails a load with an EngineError naming the function that serves script mode when there is no Python, and the process lives on", () => {
    const script = `
      import { PythonEngine } from "./functions/inference/engine.ts";
      const engine = new PythonEngine(undefined);
      try { await engine["start"](); console.log("started"); } catch (e) { console.log(JSON.stringify({ name: e.constructor.name, message: e.message })); }
      setTimeout(() => console.log("alive"), 50);`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: projectRoot, encoding: "utf8", env: { ...process.env, SERVERLESS_TF_PYTHON: "/nonexistent/python" } });
    const lines = r.stdout.trim().split("\n");
    assert.equal(r.status, 0, r.stderr);
    const error = JSON.parse(lines[0]!) as { name: string; message: string };
    assert.equal(error.name, "EngineError");
    assert.match(error.message, /\/nonexistent\/python.*inference image function/);
    assert.equal(lines.at(-1), "alive");
  });
});
