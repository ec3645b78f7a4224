import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { validateRequest } from "../../../functions/coordinator/start-job.ts";
import { schemaOf } from "../../../src/api/table.ts";
import { ConfigError } from "../../../src/errors.ts";
import type { JobRequest } from "../../../src/protocol/start-request.ts";

function request(env: Record<string, string>): JobRequest {
  return {
    mode: "train",
    cluster: { worker: 1, ps: 0 },
    python: { scripts: ["s3://b/code/model.py"], entry: "train", hyperParams: {}, env },
    input: { columns: schemaOf({ x: "FLOAT32" }) },
    output: null,
    batchSize: 8,
    remainder: { policy: "drop" },
    source: { kind: "s3", uri: "s3://b/data/" },
    bucket: "b",
    model: null,
  };
}

describe("a start request the coordinator validates", () => {
  it("takes the user's own variables", () => {
    assert.doesNotThrow(() => validateRequest(request({ MY_FLAG: "1", TF_CPP_MIN_LOG_LEVEL: "3" })));
  });

  it("refuses the runtime's settings, AWS credentials and endpoints, and what the worker sets itself", () => {
    for (const name of ["SERVERLESS_TF_TABLE", "SERVERLESS_TF_BUCKET", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "TF_CONFIG", "PYTHONPATH"]) {
      assert.throws(() => validateRequest(request({ [name]: "x" })), (e: unknown) => e instanceof ConfigError && e.message.includes("trainEnv") && e.message.includes(name), name);
    }
  });

  it("refuses parameter servers, naming psNum and what is allowed", () => {
    assert.throws(() => validateRequest({ ...request({}), cluster: { worker: 2, ps: 1 } }), (e: unknown) => e instanceof ConfigError && e.message.includes("psNum") && e.message.includes("MultiWorkerMirroredStrategy"));
  });
});
