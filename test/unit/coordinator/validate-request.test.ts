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

  it("takes secrets by their full ARN under serverless-tf/, and refuses any other ARN or a name the runtime or the env sets", () => {
    const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:serverless-tf/api-token-AbC123";
    const withSecrets = (secrets: Record<string, string>, env: Record<string, string> = {}) => {
      const r = request(env);
      return { ...r, python: { ...r.python, secrets } };
    };
    assert.doesNotThrow(() => validateRequest(withSecrets({ API_TOKEN: arn })));
    const refused = (secrets: Record<string, string>, env: Record<string, string>, expected: string) =>
      assert.throws(() => validateRequest(withSecrets(secrets, env)), (e: unknown) => e instanceof ConfigError && e.message.includes("trainSecrets") && e.message.includes(expected), expected);
    refused({ API_TOKEN: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-password-AbC123" }, {}, "prod/db-password");
    refused({ API_TOKEN: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:serverless-tf/api-token" }, {}, "6 characters");
    refused({ AWS_SECRET_ACCESS_KEY: arn }, {}, "AWS_SECRET_ACCESS_KEY");
    refused({ API_TOKEN: arn }, { API_TOKEN: "plain" }, "API_TOKEN");
  });

  it("takes parameter servers for a bounded fit, and refuses them for transform, a streaming fit, or past 16", () => {
    assert.doesNotThrow(() => validateRequest({ ...request({}), cluster: { worker: 2, ps: 1 } }));
    const refused = (r: JobRequest, expected: string) => assert.throws(() => validateRequest(r), (e: unknown) => e instanceof ConfigError && e.message.includes("psNum") && e.message.includes(expected), expected);
    refused({ ...request({}), mode: "inference", cluster: { worker: 1, ps: 1 } }, "transform");
    refused({ ...request({}), cluster: { worker: 1, ps: 1 }, source: { kind: "queue", queueUrl: "https://sqs/q" } as JobRequest["source"] }, "streaming fit");
    refused({ ...request({}), cluster: { worker: 1, ps: 17 } }, "0 to 16");
  });
});
