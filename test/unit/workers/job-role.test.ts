/**
 * The job role's policy (src/workers/job-role.ts) is pure data; these tests read it the way IAM
 * matches resources (`*` any run of characters, `?` one), since the emulator does not evaluate
 * policies. A job's policy must reach its own registry partition, queues and prefixes, and nothing
 * of another job, including one whose id starts or ends with the first one's.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../../src/errors.ts";
import type { JobSpec } from "../../../src/protocol/spec.ts";
import { jobRolePolicy, resourcesFromBoundary, type PolicyDocument } from "../../../src/workers/job-role.ts";

const where = resourcesFromBoundary("arn:aws:iam::123456789012:policy/stf-WorkerBoundary", "eu-west-1", "serverless-tf-registry");

function specOf(jobId: string, over: Partial<JobSpec> = {}): JobSpec {
  const q = (name: string) => `https://sqs.eu-west-1.amazonaws.com/123456789012/stf-${jobId}-${name}`;
  return {
    jobId,
    bucket: "stf-artifacts",
    bounded: true,
    python: { scripts: [], entry: "train", hyperParams: {}, env: {} },
    queues: { feed: { "worker-0": q("feed-worker-0"), "worker-1": q("feed-worker-1") }, output: q("output"), dlq: q("dlq") },
    model: { modelId: "digits", version: `01764547200000-${jobId}`, exportUri: `s3://stf-artifacts/models/digits/versions/01764547200000-${jobId}/`, versionsUri: "s3://stf-artifacts/models/digits/versions/" },
    modelArtifactUri: null,
    initModelUri: null,
    ...over,
  } as unknown as JobSpec;
}

const glob = (pattern: string) => new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
/** Whether any statement allows `action` on `resource` (conditions aside). */
const allows = (policy: PolicyDocument, action: string, resource: string) => policy.Statement.some((s) => s.Action.includes(action) && s.Resource.some((r) => glob(r).test(resource)));
const s3 = (key: string) => `arn:aws:s3:::stf-artifacts/${key}`;
const sqs = (name: string) => `arn:aws:sqs:eu-west-1:123456789012:${name}`;

describe("jobRolePolicy", () => {
  const a = jobRolePolicy(specOf("fit-a"), where);

  it("reaches the job's own queues, objects and registry partition", () => {
    for (const name of ["stf-fit-a-feed-worker-0", "stf-fit-a-feed-worker-1", "stf-fit-a-output", "stf-fit-a-dlq"]) assert.ok(allows(a, "sqs:ReceiveMessage", sqs(name)), name);
    assert.ok(allows(a, "s3:GetObject", s3("jobs/fit-a/code/model.py")));
    assert.ok(allows(a, "s3:PutObject", s3("jobs/fit-a/checkpoints/step-00000100/ckpt.index")));
    assert.ok(allows(a, "s3:PutObject", s3("jobs/fit-a/spool/worker-0/part-00001.tfrecord")));
    assert.ok(allows(a, "s3:PutObject", s3("models/digits/versions/01764547200000-fit-a/artifact/saved_model.pb")));
    const registry = a.Statement.find((s) => s.Sid === "OwnRegistryItems")!;
    assert.deepEqual(registry.Condition, { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": ["job#fit-a"] } });
    assert.ok(!registry.Action.includes("dynamodb:Scan"), "a scan reads every partition; LeadingKeys cannot limit it");
  });

  it("reaches nothing of another job, even one whose id begins or ends with this one's", () => {
    for (const other of ["fit-b", "fit-a1", "x-fit-a"]) {
      for (const name of [`stf-${other}-feed-worker-0`, `stf-${other}-output`, `stf-${other}-dlq`]) assert.ok(!allows(a, "sqs:SendMessage", sqs(name)), name);
      for (const key of [`jobs/${other}/code/model.py`, `jobs/${other}/spool/worker-0/part-00001.tfrecord`, `jobs/${other}/checkpoints/x`]) {
        assert.ok(!allows(a, "s3:GetObject", s3(key)), key);
        assert.ok(!allows(a, "s3:PutObject", s3(key)), key);
      }
      assert.ok(!allows(a, "s3:PutObject", s3(`models/digits/versions/01764547200000-${other}/export.json`)), other);
    }
    assert.ok(!allows(a, "s3:PutObject", s3("models/digits/latest.json")), "only the checkpoint stage moves the latest pointer");
    assert.ok(!allows(a, "s3:PutObject", s3("models/digits/versions/zzzz/export.json")), "a planted version");
  });

  it("writes an unbounded job's versions only as <14-digit time>-<its id>/", () => {
    const stream = jobRolePolicy(specOf("fit-a", { bounded: false }), where);
    assert.ok(allows(stream, "s3:PutObject", s3("models/digits/versions/01764547299999-fit-a/export.json")));
    assert.ok(!allows(stream, "s3:PutObject", s3("models/digits/versions/01764547299999-x-fit-a/export.json")), "job x-fit-a's version");
    assert.ok(!allows(stream, "s3:PutObject", s3("models/digits/versions/99999999999999999999-fit-a/export.json")), "a far-future version name");
  });

  it("reads the model an inference job serves or a fit starts from, and nothing else of the models", () => {
    const inference = jobRolePolicy(specOf("infer-a", { model: null, modelArtifactUri: "s3://stf-artifacts/models/digits/versions/v1/artifact/" }), where);
    assert.ok(allows(inference, "s3:GetObject", s3("models/digits/versions/v1/artifact/saved_model.pb")));
    assert.ok(!allows(inference, "s3:GetObject", s3("models/other/versions/v1/artifact/saved_model.pb")));
    assert.ok(!inference.Statement.some((s) => s.Sid === "WriteOwnExport"), "an inference job exports nothing");
    const warm = jobRolePolicy(specOf("fit-w", { initModelUri: "s3://weights/pretrained/resnet/" }), where);
    assert.ok(allows(warm, "s3:GetObject", "arn:aws:s3:::weights/pretrained/resnet/variables/variables.index"));
    const list = warm.Statement.filter((s) => s.Action.includes("s3:ListBucket"));
    assert.deepEqual(list.map((s) => [s.Resource, s.Condition]), [
      [["arn:aws:s3:::stf-artifacts"], { StringLike: { "s3:prefix": ["jobs/fit-w/*", "models/digits/versions/01764547200000-fit-w/*"] } }],
      [["arn:aws:s3:::weights"], { StringLike: { "s3:prefix": ["pretrained/resnet/*"] } }],
    ]);
  });
});

describe("jobRolePolicy secrets", () => {
  it("reads exactly the secrets the job's spec names, and none when it names none", () => {
    const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:serverless-tf/api-token-AbC123";
    const withSecret = jobRolePolicy(specOf("fit-s", { python: { scripts: [], entry: "train", hyperParams: {}, env: {}, secrets: { API_TOKEN: arn } } } as Partial<JobSpec>), where);
    assert.deepEqual(withSecret.Statement.filter((s) => s.Action.includes("secretsmanager:GetSecretValue")).map((s) => s.Resource), [[arn]]);
    const without = jobRolePolicy(specOf("fit-t", { python: { scripts: [], entry: "train", hyperParams: {}, env: {} } } as Partial<JobSpec>), where);
    assert.ok(!without.Statement.some((s) => s.Action.includes("secretsmanager:GetSecretValue")));
  });
});

describe("resourcesFromBoundary", () => {
  it("takes the partition and account from the boundary policy's ARN", () => {
    assert.deepEqual(resourcesFromBoundary("arn:aws-cn:iam::210987654321:policy/b", "cn-north-1", "t"), { partition: "aws-cn", accountId: "210987654321", region: "cn-north-1", tableName: "t", boundaryArn: "arn:aws-cn:iam::210987654321:policy/b" });
  });

  it("names the setting when the ARN is not a managed policy's", () => {
    assert.throws(() => resourcesFromBoundary("arn:aws:iam::123456789012:role/x", "eu-west-1", "t"), (e: unknown) => e instanceof ConfigError && e.setting === "jobRoleBoundary");
  });
});
