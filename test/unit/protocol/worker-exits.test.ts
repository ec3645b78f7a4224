/** The worker's exit codes mean the same on both sides: Python defines them, the job watch reads them. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { WORKER_EXITS } from "../../../src/protocol/worker-exits.ts";
import { projectPython, pythonChildEnv } from "../../../src/workers/paths.ts";

describe("worker exit codes", () => {
  it("are the ones python/serverless_tf/protocol/exits.py defines", () => {
    const printed = execFileSync(projectPython, ["-c", "import json; from serverless_tf.protocol.exits import WORKER_EXITS; print(json.dumps(WORKER_EXITS))"], {
      env: { ...process.env, ...pythonChildEnv() },
      encoding: "utf8",
    });
    assert.deepEqual(JSON.parse(printed), WORKER_EXITS);
  });
});
