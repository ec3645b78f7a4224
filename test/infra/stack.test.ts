/**
 * The repository's CDK app (infra/app.ts: the `ServerlessTf` construct in `ServerlessTfStack`),
 * synthesized offline once for the whole file (the zip functions are the bundles in
 * dist/functions, which `npm test` builds first; the two images are only staged), with cdk-nag's
 * AwsSolutions pack as a validation plugin: a finding nobody acknowledged interrupts the synth
 * and fails every test here.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { App } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { buildApp } from "../../infra/app.ts";
import { packageRoot } from "../../infra/code.ts";
import type { ServerlessTfStack } from "../../infra/stack.ts";
import {
  BUCKET_PREFIXES,
  ENV,
  FUNCTIONS,
  JOB_QUEUE_PREFIX,
  LIFECYCLE,
  REGISTRY_TABLE,
  RUNTIME_QUEUES,
  STACK_OUTPUTS,
  VISIBILITY_PER_FUNCTION_TIMEOUT,
  bundleOf,
  localProvisioningPlan,
  queuePlan,
  type FunctionName,
  type RuntimeQueueKey,
} from "../../src/resources/definitions.ts";
import { EXPORT_MANIFEST } from "../../src/protocol/model-metadata.ts";

type Resources = Record<string, { Type: string; Properties?: Record<string, any>; Metadata?: Record<string, any> }>;

const projectRoot = packageRoot();
const names = Object.keys(FUNCTIONS) as FunctionName[];
const queueKeys = Object.keys(RUNTIME_QUEUES) as RuntimeQueueKey[];
/** Logical ids of the construct's resources start with its id in the stack. */
const inTf = (id: string) => `ServerlessTf${id}`;
const pascal = (name: string) => name.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
let outdir = "";
let template: Template;
let resources: Resources;
let stack: ServerlessTfStack;
let synthError: unknown;
let synthMs = 0;

before(() => {
  outdir = mkdtempSync(join(tmpdir(), "stf-cdk-"));
  const app = new App({ outdir });
  stack = buildApp(app, {}).stack;
  const started = Date.now();
  try {
    const assembly = app.synth();
    template = Template.fromJSON(assembly.getStackByName(stack.stackName).template);
    resources = template.toJSON().Resources as Resources;
  } catch (e) {
    synthError = e;
  }
  synthMs = Date.now() - started;
});

after(() => rmSync(outdir, { recursive: true, force: true }));

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const fnOf = (name: FunctionName) => {
  const found = ofType("AWS::Lambda::Function").filter(([id]) => id.startsWith(inTf(pascal(name))));
  assert.equal(found.length, 1, `one ${name} function`);
  return found[0]!;
};
const statementsOf = (policyTypes = ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"]) =>
  Object.entries(resources).flatMap(([id, r]) =>
    policyTypes.includes(r.Type) ? (r.Properties!.PolicyDocument.Statement as any[]).map((s) => ({ id, s })) : r.Type === "AWS::IAM::Role" ? (r.Properties!.Policies ?? []).flatMap((p: any) => p.PolicyDocument.Statement.map((s: any) => ({ id, s }))) : [],
  );
const asList = <T>(v: T | T[]) => (Array.isArray(v) ? v : [v]);
const policyOfRole = (roleLogicalIdPrefix: string) => statementsOf().filter(({ id }) => id.startsWith(inTf(roleLogicalIdPrefix))).map(({ s }) => s);

describe("synth", () => {
  it("synthesizes offline with every cdk-nag AwsSolutions finding fixed or acknowledged", () => {
    if (synthError) {
      const report = join(outdir, "validation-report.json");
      assert.fail(`synth failed: ${String(synthError)}\n${existsSync(report) ? readFileSync(report, "utf8").slice(0, 4000) : ""}`);
    }
    assert.ok(synthMs < 120_000, `synth took ${synthMs} ms`);
  });

  it("gives every acknowledged finding a written reason", () => {
    const acknowledged = Object.values(resources).flatMap((r) => (r.Metadata?.cdk_nag?.rules_to_suppress ?? []) as { id: string; reason: string }[]);
    assert.ok(acknowledged.length > 0, "the template carries the acknowledgements (writeSuppressionsToCloudFormation)");
    for (const { id, reason } of acknowledged) assert.ok(reason.length >= 40, `${id} needs a reason, got ${JSON.stringify(reason)}`);
    // CloudFormation-Validate::* entries are aws-cdk-lib's own acknowledgements (literal AZs and the like).
    const ours = acknowledged.filter((a) => a.id.startsWith("AwsSolutions-"));
    const rules = new Set(ours.map((a) => a.id.replace(/\[.*$/, "")));
    assert.deepEqual([...rules].sort(), ["AwsSolutions-IAM4", "AwsSolutions-IAM5", "AwsSolutions-L1"]);
  });
});

describe("storage", () => {
  it("blocks public access, encrypts, refuses plain HTTP and logs access on the artifacts bucket", () => {
    const [id, bucket] = ofType("AWS::S3::Bucket").find(([id]) => id.startsWith(inTf("StorageArtifacts")))!;
    assert.deepEqual(bucket.Properties!.PublicAccessBlockConfiguration, { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    assert.equal(bucket.Properties!.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm, "AES256");
    assert.ok(bucket.Properties!.LoggingConfiguration.DestinationBucketName);
    template.hasResourceProperties("AWS::S3::BucketPolicy", {
      Bucket: { Ref: id },
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } })]) },
    });
  });

  it("versions the artifacts bucket and expires job data, tagged checkpoints and spool parts, old versions and abandoned uploads", () => {
    const [, bucket] = ofType("AWS::S3::Bucket").find(([id]) => id.startsWith(inTf("StorageArtifacts")))!;
    const rules = bucket.Properties!.LifecycleConfiguration.Rules as any[];
    const byId = Object.fromEntries(rules.map((r) => [r.Id, r]));
    assert.deepEqual({ prefix: byId["expire-job-data"].Prefix, days: byId["expire-job-data"].ExpirationInDays }, { prefix: "jobs/", days: LIFECYCLE.jobsExpireDays });
    assert.deepEqual(byId["expire-checkpoints"].TagFilters, [{ Key: LIFECYCLE.tagKey, Value: "checkpoint" }]);
    assert.equal(byId["expire-checkpoints"].ExpirationInDays, LIFECYCLE.checkpointsExpireDays);
    assert.deepEqual(byId["expire-spool-parts"].TagFilters, [{ Key: LIFECYCLE.tagKey, Value: "spool" }]);
    assert.equal(byId["abort-incomplete-uploads"].AbortIncompleteMultipartUpload.DaysAfterInitiation, LIFECYCLE.abortIncompleteUploadDays);
    assert.deepEqual(bucket.Properties!.VersioningConfiguration, { Status: "Enabled" });
    assert.equal(byId["expire-noncurrent-versions"].NoncurrentVersionExpiration.NoncurrentDays, LIFECYCLE.noncurrentVersionsExpireDays);
  });

  it("makes the registry table on demand, with point-in-time recovery, TTL and encryption", () => {
    template.hasResourceProperties("AWS::DynamoDB::Table", {
      BillingMode: "PAY_PER_REQUEST",
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: REGISTRY_TABLE.timeToLiveAttribute, Enabled: true },
      SSESpecification: { SSEEnabled: true },
    });
  });
});

describe("queues and event sources", () => {
  it("encrypts every queue and gives every runtime queue a DLQ", () => {
    const queues = ofType("AWS::SQS::Queue");
    assert.equal(queues.length, 2 * queueKeys.length, "each runtime queue and its DLQ");
    for (const [id, q] of queues) {
      assert.equal(q.Properties!.SqsManagedSseEnabled, true, `${id} encrypted`);
      if (!String(q.Properties!.QueueName).endsWith("-dlq")) assert.ok(q.Properties!.RedrivePolicy?.deadLetterTargetArn, `${id} has a DLQ`);
    }
    const tlsOnly = ofType("AWS::SQS::QueuePolicy").filter(([, p]) => p.Properties!.PolicyDocument.Statement.some((s: any) => s.Effect === "Deny" && s.Condition?.Bool?.["aws:SecureTransport"] === "false"));
    assert.equal(tlsOnly.flatMap(([, p]) => p.Properties!.Queues).length, 2 * queueKeys.length, "every queue refuses plain HTTP");
  });

  it("sets each queue's visibility timeout to six times its consumer's timeout", () => {
    for (const key of queueKeys) {
      const plan = queuePlan("serverless-tf", key);
      const [, q] = ofType("AWS::SQS::Queue").find(([, q]) => q.Properties!.QueueName === plan.name)!;
      assert.equal(q.Properties!.VisibilityTimeout, FUNCTIONS[plan.consumer].timeoutSeconds * VISIBILITY_PER_FUNCTION_TIMEOUT);
      const [, fn] = fnOf(plan.consumer);
      assert.equal(q.Properties!.VisibilityTimeout, fn.Properties!.Timeout * VISIBILITY_PER_FUNCTION_TIMEOUT);
    }
  });

  it("maps each runtime queue to its function with partial batch failures, polling at most the function's reserved concurrency at once", () => {
    const mappings = ofType("AWS::Lambda::EventSourceMapping");
    assert.equal(mappings.length, queueKeys.length);
    for (const key of queueKeys) {
      const plan = queuePlan("serverless-tf", key);
      const [queueId] = ofType("AWS::SQS::Queue").find(([, q]) => q.Properties!.QueueName === plan.name)!;
      const [fnId] = fnOf(plan.consumer);
      const mapping = mappings.find(([, m]) => m.Properties!.EventSourceArn["Fn::GetAtt"][0] === queueId)?.[1];
      assert.ok(mapping, `a mapping from ${plan.name}`);
      assert.deepEqual(mapping.Properties!.FunctionName, { Ref: fnId });
      assert.equal(mapping.Properties!.BatchSize, plan.batchSize);
      assert.deepEqual(mapping.Properties!.FunctionResponseTypes, ["ReportBatchItemFailures"]);
      assert.equal(mapping.Properties!.ScalingConfig?.MaximumConcurrency, Math.max(2, FUNCTIONS[plan.consumer].reservedConcurrency), `${plan.name}: throttled polls would count as receives`);
    }
  });

  it("sends the bucket's export.json notifications to the events queue", () => {
    const eventsId = ofType("AWS::SQS::Queue").find(([, q]) => q.Properties!.QueueName === queuePlan("serverless-tf", "events").name)![0];
    template.hasResourceProperties("Custom::S3BucketNotifications", {
      NotificationConfiguration: {
        QueueConfigurations: Match.arrayWith([
          {
            Events: ["s3:ObjectCreated:*"],
            QueueArn: { "Fn::GetAtt": [eventsId, "Arn"] },
            Filter: { Key: { FilterRules: Match.arrayWith([{ Name: "suffix", Value: EXPORT_MANIFEST }, { Name: "prefix", Value: "models/" }]) } },
          },
        ]),
      },
    });
  });

  it("sends every new object under training/ to the fit-triggers queue, which the coordinator consumes", () => {
    // Arrange
    const plan = queuePlan("serverless-tf", "fitTriggers");
    const [queueId, queue] = ofType("AWS::SQS::Queue").find(([, q]) => q.Properties!.QueueName === plan.name)!;
    const [dlqId] = ofType("AWS::SQS::Queue").find(([, q]) => q.Properties!.QueueName === plan.dlq.name)!;
    const { QueueConfigurations } = ofType("Custom::S3BucketNotifications")[0]![1].Properties!.NotificationConfiguration;
    // Act
    const toTriggers = (QueueConfigurations as any[]).filter((c) => c.QueueArn["Fn::GetAtt"][0] === queueId);
    // Assert: prefix only (any suffix: .jsonl, .csv, .tfrecord; _fit.json is ignored by the trigger), with a DLQ
    assert.deepEqual(toTriggers, [{ Events: ["s3:ObjectCreated:*"], QueueArn: { "Fn::GetAtt": [queueId, "Arn"] }, Filter: { Key: { FilterRules: [{ Name: "prefix", Value: BUCKET_PREFIXES.training }] } } }]);
    assert.deepEqual(queue.Properties!.RedrivePolicy, { deadLetterTargetArn: { "Fn::GetAtt": [dlqId, "Arn"] }, maxReceiveCount: plan.dlq.maxReceiveCount });
    assert.equal(plan.consumer, "coordinator");
    template.hasResourceProperties("AWS::SQS::QueuePolicy", {
      Queues: [{ Ref: queueId }],
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: "Allow", Principal: { Service: "s3.amazonaws.com" }, Action: Match.arrayWith(["sqs:SendMessage"]) })]) },
    });
  });
});

describe("functions", () => {
  it("runs the seven functions with the packaging, architecture and sizes of src/resources/definitions.ts", () => {
    for (const name of names) {
      const [, fn] = fnOf(name);
      if (FUNCTIONS[name].packaging === "zip") {
        assert.equal(fn.Properties!.Runtime, "nodejs22.x");
        assert.equal(fn.Properties!.Handler, "index.handler");
      } else {
        assert.equal(fn.Properties!.PackageType, "Image", `${name} is a container image`);
        assert.ok(fn.Properties!.Code.ImageUri, `${name} has an image URI`);
        assert.equal(fn.Properties!.Runtime, undefined, "the runtime is the image's");
      }
      assert.deepEqual(fn.Properties!.Architectures, [FUNCTIONS[name].architecture], `${name} runs on ${FUNCTIONS[name].architecture}`);
      assert.equal(fn.Properties!.MemorySize, FUNCTIONS[name].memoryMb);
      assert.equal(fn.Properties!.Timeout, FUNCTIONS[name].timeoutSeconds);
      assert.equal(fn.Properties!.ReservedConcurrentExecutions, FUNCTIONS[name].reservedConcurrency);
      assert.ok(fn.Properties!.Environment.Variables[ENV.table] && fn.Properties!.Environment.Variables[ENV.bucket], `${name} knows the table and bucket`);
    }
  });

  it("deploys each zip function from its bundle's folder of dist/functions: the bundle npm run build wrote, byte for byte", () => {
    const zips = names.filter((n) => FUNCTIONS[n].packaging === "zip");
    assert.deepEqual(zips.sort(), ["checkpoint", "coordinator", "job-watch", "shard-feed", "signature-inference", "stream-feed"]);
    assert.equal(bundleOf("signature-inference"), "inference", "the image's handler, in a zip");
    for (const name of zips) {
      // Arrange
      const [, fn] = fnOf(name);
      const built = readFileSync(join(projectRoot, "dist", "functions", bundleOf(name), "index.mjs"));
      // Act
      const staged = join(outdir, String(fn.Metadata!["aws:asset:path"]));
      // Assert
      assert.equal(fn.Properties!.Code.S3Bucket !== undefined && fn.Properties!.Code.S3Key !== undefined, true, `${name}'s code is an S3 asset`);
      assert.equal(fn.Metadata!["aws:asset:property"], "Code");
      assert.ok(readFileSync(join(staged, "index.mjs")).equals(built), `${staged}/index.mjs is dist/functions/${name}/index.mjs`);
      assert.match(built.subarray(0, 200).toString(), /createRequire/, "with the banner for CommonJS dependencies that call require()");
    }
  });

  it("runs inference as an x86-64 image of functions/inference/Dockerfile, staged from the built bundle and the engine sources only", () => {
    // Arrange
    const [, fn] = fnOf("inference");
    const images = JSON.parse(readFileSync(join(outdir, `${stack.stackName}.assets.json`), "utf8")).dockerImages as Record<string, any>;
    // Act
    const image = Object.values(images).find((i) => i.source.dockerFile === "functions/inference/Dockerfile");
    // Assert
    assert.equal(fn.Properties!.PackageType, "Image");
    assert.deepEqual(fn.Properties!.Architectures, ["x86_64"], "tensorflow-cpu wheels are x86-64");
    assert.ok(image, "an image asset built from functions/inference/Dockerfile");
    assert.equal(image.source.platform, "linux/amd64");
    const context = join(outdir, image.source.directory);
    assert.equal(readFileSync(join(context, "functions", "inference", "Dockerfile"), "utf8"), readFileSync(join(projectRoot, "functions", "inference", "Dockerfile"), "utf8"));
    for (const needed of ["dist/functions/inference/index.mjs", "python/requirements.lock", "python/serverless_tf/serve.py"]) {
      assert.ok(existsSync(join(context, needed)), `${needed} is in the build context`);
    }
    for (const kept of ["node_modules", ".venv", ".tmp", "dist/lib", "dist/functions/coordinator", "cdk.out", "test", "python/tests", "src", "package-lock.json"]) {
      assert.ok(!existsSync(join(context, kept)), `${kept} is not staged (.dockerignore)`);
    }
  });

  it("runs signature-inference with the onnxruntime layer, the one function that has a layer", () => {
    // Arrange
    const [layerId, layer] = ofType("AWS::Lambda::LayerVersion").find(([id]) => id.startsWith(inTf("LayerOnnxruntime")))!;
    // Act
    const withLayers = names.filter((name) => fnOf(name)[1].Properties!.Layers !== undefined && fnOf(name)[1].Properties!.Layers.length > 0);
    // Assert
    assert.equal(ofType("AWS::Lambda::LayerVersion").length, 1);
    assert.deepEqual(withLayers, ["signature-inference"]);
    assert.deepEqual(fnOf("signature-inference")[1].Properties!.Layers, [{ Ref: layerId }]);
    assert.equal(fnOf("inference")[1].Properties!.Layers, undefined, "the image carries its own engine");
    assert.deepEqual(layer.Properties!.CompatibleRuntimes, ["nodejs22.x"]);
    assert.deepEqual(layer.Properties!.CompatibleArchitectures, [FUNCTIONS["signature-inference"].architecture]);
  });

  it("stages the layer from dist/layers/onnxruntime with one platform's binding: linux on the function's architecture", () => {
    // Arrange
    const [, layer] = ofType("AWS::Lambda::LayerVersion").find(([id]) => id.startsWith(inTf("LayerOnnxruntime")))!;
    const staged = join(outdir, String(layer.Metadata!["aws:asset:path"]));
    const filesUnder = (dir: string): string[] => (statSync(dir).isDirectory() ? readdirSync(dir).flatMap((f) => filesUnder(join(dir, f))) : [dir]);
    const arch = { x86_64: "x64", arm64: "arm64" }[FUNCTIONS["signature-inference"].architecture];
    // Act
    const bin = join(staged, "nodejs", "node_modules", "onnxruntime-node", "bin");
    const binaries = filesUnder(bin).map((f) => relative(bin, f));
    // Assert
    assert.equal(layer.Metadata!["aws:asset:property"], "Content");
    assert.deepEqual(readdirSync(join(staged, "nodejs", "node_modules")).sort(), ["onnxruntime-common", "onnxruntime-node"]);
    assert.deepEqual(binaries.sort(), [`napi-v6/linux/${arch}/libonnxruntime.so.1`, `napi-v6/linux/${arch}/onnxruntime_binding.node`]);
    const built = join(projectRoot, "dist", "layers", "onnxruntime", "nodejs", "node_modules", "onnxruntime-node", "bin", "napi-v6", "linux", arch, "onnxruntime_binding.node");
    assert.ok(readFileSync(join(bin, "napi-v6", "linux", arch, "onnxruntime_binding.node")).equals(readFileSync(built)), "the binding npm run build assembled");
  });

  it("gives signature-inference the inference function's environment and grants, less the image's ECR pull", () => {
    // Arrange: a statement names the role's own log group, and the image role pulls its image
    const own = (s: any) => asList(s.Action).every((a: string) => a.startsWith("logs:") || a.startsWith("ecr:"));
    const grants = (role: string) => policyOfRole(role).filter((s) => !own(s)).map((s) => JSON.stringify(s)).sort();
    // Act
    const [image, zip] = [fnOf("inference")[1], fnOf("signature-inference")[1]];
    // Assert
    assert.deepEqual(zip.Properties!.Environment, image.Properties!.Environment);
    assert.ok(grants("SignatureInferenceRole").length >= 5);
    assert.deepEqual(grants("SignatureInferenceRole"), grants("InferenceRole"));
  });

  it("gives the inference function the base environment only: each batch's queue names its model, output queue and DLQ", () => {
    const vars = fnOf("inference")[1].Properties!.Environment.Variables as Record<string, unknown>;
    assert.deepEqual(Object.keys(vars).sort(), [ENV.bucket, ENV.jobWatchQueueUrl, ENV.shardFeedQueueUrl, ENV.table].sort());
    for (const gone of ["SERVERLESS_TF_MODEL_ID", "SERVERLESS_TF_OUTPUT_QUEUE_URL", "SERVERLESS_TF_DLQ_URL"]) assert.equal(vars[gone], undefined, gone);
  });

  it("lets the inference function send to stf-* queues and consume every served input queue, so a model served later needs no new grant", () => {
    // Arrange
    const statements = policyOfRole("InferenceRole");
    const sqsArn = (name: string) => ({ "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":sqs:", { Ref: "AWS::Region" }, ":", { Ref: "AWS::AccountId" }, `:${name}`]] });
    // Act
    const on = (name: string) => statements.filter((s) => JSON.stringify(s.Resource) === JSON.stringify(sqsArn(name))).flatMap((s) => asList(s.Action) as string[]);
    // Assert: stf-* holds every served model's -output and -dlq
    assert.deepEqual(on(`${JOB_QUEUE_PREFIX}*`).sort(), ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"]);
    assert.deepEqual(on("stf-serve-*-input").sort(), ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]);
    assert.ok(!statements.some((s) => asList(s.Action).includes("sqs:CreateQueue")), "it creates no queue");
  });

  it("gives the coordinator what the ECS launcher reads", () => {
    const vars = fnOf("coordinator")[1].Properties!.Environment.Variables;
    assert.equal(vars[ENV.launcher], "ecs");
    for (const key of [ENV.ecsCluster, ENV.ecsTaskDefinition, ENV.ecsContainer, ENV.ecsSubnets, ENV.ecsSecurityGroups, ENV.shardFeedQueueUrl]) assert.ok(vars[key], key);
  });
});

describe("outputs", () => {
  it("outputs every key of STACK_OUTPUTS, each the name, URL or ARN of its resource", () => {
    // Arrange
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    const idOf = (type: string, name?: string) => ofType(type).find(([, r]) => name === undefined || r.Properties!.QueueName === name)![0];
    const { functionName, inferenceBatchSize, inferenceMaxBatchingWindowSeconds, ...resourceKeys } = STACK_OUTPUTS;
    // Act
    const value = (key: string) => outputs[key]?.Value;
    // Assert
    assert.deepEqual(Object.keys(outputs).sort(), [...Object.values(resourceKeys), inferenceBatchSize, inferenceMaxBatchingWindowSeconds, ...Object.values(functionName)].sort());
    assert.deepEqual(value(STACK_OUTPUTS.bucketName), { Ref: ofType("AWS::S3::Bucket").find(([id]) => id.startsWith(inTf("StorageArtifacts")))![0] });
    assert.deepEqual(value(STACK_OUTPUTS.tableName), { Ref: idOf("AWS::DynamoDB::Table") });
    assert.deepEqual(value(STACK_OUTPUTS.shardFeedQueueUrl), { Ref: idOf("AWS::SQS::Queue", queuePlan("serverless-tf", "shardFeed").name) });
    assert.deepEqual(value(STACK_OUTPUTS.jobWatchQueueUrl), { Ref: idOf("AWS::SQS::Queue", queuePlan("serverless-tf", "jobWatch").name) });
    assert.deepEqual(value(STACK_OUTPUTS.workerCluster), { Ref: idOf("AWS::ECS::Cluster") });
    assert.deepEqual(value(STACK_OUTPUTS.workerTaskDefinition), { Ref: idOf("AWS::ECS::TaskDefinition") });
    assert.deepEqual([value(inferenceBatchSize), value(inferenceMaxBatchingWindowSeconds)], ["10", "0"]);
    for (const name of names) assert.deepEqual(value(functionName[name]), { Ref: fnOf(name)[0] }, functionName[name]);
    assert.deepEqual(Object.values(functionName).sort(), names.map((n) => `${pascal(n)}FunctionName`).sort());
  });
});

describe("permissions", () => {
  it("names every IAM action: no wildcard in any action of any statement", () => {
    const all = statementsOf();
    assert.ok(all.length > 20);
    for (const { id, s } of all) {
      assert.equal(s.NotAction, undefined, `${id} uses NotAction`);
      for (const action of asList(s.Action)) assert.ok(!String(action).includes("*"), `${id}: ${action}`);
    }
  });

  it("lets the coordinator manage only stf-* queues, run only the worker task definition and pass only its roles", () => {
    const statements = policyOfRole("CoordinatorRole");
    const create = statements.find((s) => asList(s.Action).includes("sqs:CreateQueue"));
    assert.deepEqual(create.Resource, { "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":sqs:", { Ref: "AWS::Region" }, ":", { Ref: "AWS::AccountId" }, `:${JOB_QUEUE_PREFIX}*`]] });
    // Attributes and policy are set at creation: nothing may change a queue's policy afterwards.
    const sqsActions = statements.flatMap((s) => asList(s.Action) as string[]).filter((a) => a.startsWith("sqs:"));
    for (const refused of ["sqs:SetQueueAttributes", "sqs:AddPermission", "sqs:TagQueue"]) assert.ok(!sqsActions.includes(refused), refused);
    const run = statements.find((s) => asList(s.Action).includes("ecs:RunTask"));
    assert.deepEqual(run.Resource, { Ref: Object.keys(resources).find((id) => resources[id]!.Type === "AWS::ECS::TaskDefinition") });
    assert.ok(run.Condition.ArnEquals["ecs:cluster"]);
    const pass = statements.find((s) => asList(s.Action).includes("iam:PassRole"));
    assert.equal(pass.Resource.length, 2);
    assert.deepEqual(pass.Condition, { StringEquals: { "iam:PassedToService": "ecs-tasks.amazonaws.com" } });
  });

  it("lets the coordinator read training/ for fit triggers, and shard-feed read the data it feeds", () => {
    const patternsOf = (role: string) =>
      policyOfRole(role)
        .filter((s) => asList(s.Action).includes("s3:GetObject"))
        .flatMap((s) => asList(s.Resource))
        .map((r: any) => r["Fn::Join"]?.[1]?.[1] as string | undefined);
    assert.ok(patternsOf("CoordinatorRole").includes(`/${BUCKET_PREFIXES.training}*`));
    assert.ok(patternsOf("ShardFeedRole").includes(`/${BUCKET_PREFIXES.training}*`));
    const list = policyOfRole("CoordinatorRole").filter((s) => asList(s.Action).includes("s3:ListBucket"));
    assert.ok(list.some((s) => s.Condition?.StringLike?.["s3:prefix"]?.includes(BUCKET_PREFIXES.training)), "ListBucket under training/ only");
    assert.ok(!patternsOf("CheckpointRole").includes(`/${BUCKET_PREFIXES.training}*`), "the checkpoint stage has no business there");
  });

  it("gives the workers' task definition role nothing: each job's tasks run as the job's own role", () => {
    assert.deepEqual(policyOfRole("WorkersTaskTaskRole"), []);
    const taskRole = ofType("AWS::IAM::Role").find(([id]) => id.startsWith(inTf("WorkersTaskTaskRole")))!;
    assert.equal(taskRole[1].Properties!.ManagedPolicyArns, undefined);
  });

  it("caps every job role with the worker boundary: the bucket prefixes of docs/protocol.md, stf-* queues, item actions on the registry", () => {
    const statements = ofType("AWS::IAM::ManagedPolicy").filter(([id]) => id.startsWith(inTf("WorkerBoundary"))).flatMap(([, r]) => r.Properties!.PolicyDocument.Statement as any[]);
    const objectStatements = statements.filter((s) => asList(s.Action).some((a: string) => a.endsWith("Object")));
    const patterns = objectStatements.flatMap((s) => asList(s.Resource)).map((r: any) => r["Fn::Join"][1][1] as string);
    assert.deepEqual([...new Set(patterns)].sort(), ["/jobs/*", "/jobs/*/checkpoints/*", "/jobs/*/output/*", "/jobs/*/spool/*", "/models/*", "/models/*/versions/*"]);
    const actions = statements.flatMap((s) => asList(s.Action) as string[]);
    for (const refused of ["dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "s3:DeleteObject", "sqs:DeleteQueue", "sqs:SetQueueAttributes"]) assert.ok(!actions.includes(refused), refused);
    const secrets = statements.filter((s) => asList(s.Action).includes("secretsmanager:GetSecretValue"));
    assert.deepEqual(secrets.map((s) => JSON.stringify(s.Resource)), [JSON.stringify({ "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":secretsmanager:", { Ref: "AWS::Region" }, ":", { Ref: "AWS::AccountId" }, ":secret:serverless-tf/*"]] })], "only the secrets under serverless-tf/");
  });

  it("lets the coordinator create job roles only on the job role path and only with the worker boundary, and nobody change a boundary", () => {
    const boundaryRef = { Ref: ofType("AWS::IAM::ManagedPolicy").find(([id]) => id.startsWith(inTf("WorkerBoundary")))![0] };
    // This deployment's roles only (its region and registry table in the path): not another stack's in the same account.
    const jobRoles = JSON.stringify({ "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":iam::", { Ref: "AWS::AccountId" }, ":role/serverless-tf/jobs/", { Ref: "AWS::Region" }, "/serverless-tf-registry/stf-*-worker"]] });
    const create = policyOfRole("CoordinatorRole").filter((s) => asList(s.Action).some((a: string) => a === "iam:CreateRole" || a === "iam:PutRolePolicy"));
    assert.equal(create.length, 1);
    assert.deepEqual(create[0].Condition, { StringEquals: { "iam:PermissionsBoundary": boundaryRef } });
    assert.equal(JSON.stringify(create[0].Resource), jobRoles);
    const iamActions = statementsOf().flatMap(({ s }) => asList(s.Action) as string[]).filter((a) => a.startsWith("iam:"));
    for (const refused of ["iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary", "iam:AttachRolePolicy", "iam:CreatePolicyVersion", "iam:UpdateAssumeRolePolicy"]) assert.ok(!iamActions.includes(refused), refused);
    assert.ok(!policyOfRole("JobWatchRole").some((s) => asList(s.Action).includes("iam:CreateRole")), "job-watch only deletes job roles");
    for (const name of ["coordinator", "job-watch"] as const) assert.deepEqual(fnOf(name)[1].Properties!.Environment.Variables[ENV.jobRoleBoundary], boundaryRef, name);
  });

  it("passes only the execution role and job roles to ECS tasks", () => {
    const pass = policyOfRole("CoordinatorRole").find((s) => asList(s.Action).includes("iam:PassRole"));
    const resources = asList(pass.Resource).map((r: any) => JSON.stringify(r));
    assert.equal(resources.length, 2);
    assert.ok(resources.some((r) => r.includes("WorkersTaskExecutionRole")));
    assert.ok(resources.some((r) => r.includes(":role/serverless-tf/jobs/") && r.includes("/serverless-tf-registry/stf-*-worker")));
    assert.ok(!resources.some((r) => r.includes("WorkersTaskTaskRole")), "the empty task role is never passed");
    assert.deepEqual(pass.Condition, { StringEquals: { "iam:PassedToService": "ecs-tasks.amazonaws.com" } });
  });
});

describe("job watch", () => {
  const jobWatchQueueRef = () => ({ Ref: ofType("AWS::SQS::Queue").find(([, q]) => q.Properties!.QueueName === queuePlan("serverless-tf", "jobWatch").name)![0] });

  it("tells the coordinator and the job-watch function where watch rounds go, and job-watch what the ECS launcher reads", () => {
    for (const name of ["coordinator", "job-watch"] as const) assert.deepEqual(fnOf(name)[1].Properties!.Environment.Variables[ENV.jobWatchQueueUrl], jobWatchQueueRef(), name);
    const vars = fnOf("job-watch")[1].Properties!.Environment.Variables;
    assert.equal(vars[ENV.launcher], "ecs");
    for (const key of [ENV.ecsCluster, ENV.ecsTaskDefinition, ENV.ecsContainer, ENV.ecsSubnets, ENV.ecsSecurityGroups]) assert.ok(vars[key], key);
  });

  it("lets the coordinator and job-watch send to the job-watch queue, and nothing else", () => {
    const queueArn = { "Fn::GetAtt": [jobWatchQueueRef().Ref, "Arn"] };
    const senders = statementsOf()
      .filter(({ s }) => asList(s.Action).includes("sqs:SendMessage") && JSON.stringify(s.Resource) === JSON.stringify(queueArn))
      .map(({ id }) => id.replace(/Role.*$/, ""));
    assert.deepEqual([...new Set(senders)].sort(), [inTf("Coordinator"), inTf("JobWatch")]);
  });

  it("gives job-watch least privilege: drain and delete (not create) stf-* queues, the worker tasks, the registry, reads of models/ and the job output prefix", () => {
    // Arrange
    const statements = policyOfRole("JobWatchRole");
    const actions = new Set(statements.flatMap((s) => asList(s.Action) as string[]));
    // Act
    const jobQueues = statements.filter((s) => JSON.stringify(s.Resource).includes(`:${JOB_QUEUE_PREFIX}*`));
    const s3 = statements.filter((s) => asList(s.Action).some((a: string) => a.startsWith("s3:")));
    // Assert
    assert.deepEqual(jobQueues.flatMap((s) => asList(s.Action)), ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:DeleteQueue"]);
    for (const needed of ["ecs:RunTask", "ecs:DescribeTasks", "ecs:StopTask", "iam:PassRole", "dynamodb:UpdateItem", "dynamodb:Query", "s3:GetObject", "s3:ListBucket"]) assert.ok(actions.has(needed), needed);
    for (const refused of ["sqs:CreateQueue", "s3:DeleteObject", "dynamodb:DeleteTable"]) assert.ok(!actions.has(refused), refused);
    const resourcesOf = (action: string) => s3.filter((s) => asList(s.Action).includes(action)).flatMap((s) => asList(s.Resource)).map((r: any) => r["Fn::Join"][1][1] as string);
    assert.deepEqual(resourcesOf("s3:GetObject"), ["/models/*", "/jobs/*/output/*"]);
    assert.deepEqual(resourcesOf("s3:PutObject"), ["/jobs/*/output/*"], "it writes only the output it saves");
    const run = statements.find((s) => asList(s.Action).includes("ecs:RunTask"));
    assert.ok(run.Condition.ArnEquals["ecs:cluster"], "RunTask on the worker cluster only");
  });
});

describe("workers", () => {
  it("runs the worker from the python/ image on Fargate, with logs and no configuration baked in", () => {
    const [, td] = ofType("AWS::ECS::TaskDefinition")[0]!;
    assert.deepEqual(td.Properties!.RequiresCompatibilities, ["FARGATE"]);
    const [container] = td.Properties!.ContainerDefinitions as any[];
    assert.equal(container.Name, "worker");
    assert.equal(container.LogConfiguration.LogDriver, "awslogs");
    assert.equal(container.Environment, undefined, "table and bucket come as RunTask overrides");
    const images = JSON.parse(readFileSync(join(outdir, `${stack.stackName}.assets.json`), "utf8")).dockerImages;
    const image = (Object.values(images) as any[]).find((i) => i.source.dockerFile === undefined)!;
    assert.equal(readFileSync(join(outdir, image.source.directory, "Dockerfile"), "utf8"), readFileSync(join(projectRoot, "python", "Dockerfile"), "utf8"));
    assert.ok(!existsSync(join(outdir, image.source.directory, "tests")), ".dockerignore keeps the tests out of the build context");
  });

  it("gives the worker cluster the FARGATE and FARGATE_SPOT capacity providers, and the launcher the stack's default capacity", () => {
    const [, associations] = ofType("AWS::ECS::ClusterCapacityProviderAssociations")[0]!;
    assert.deepEqual([...(associations.Properties!.CapacityProviders as string[])].sort(), ["FARGATE", "FARGATE_SPOT"]);
    for (const name of ["coordinator", "job-watch"] as const) assert.equal(fnOf(name)[1].Properties!.Environment.Variables[ENV.workerCapacity], "fargate", name);
  });

  it("keeps the workers in isolated subnets that reach AWS through endpoints only", () => {
    assert.equal(ofType("AWS::EC2::NatGateway").length, 0);
    assert.equal(ofType("AWS::EC2::InternetGateway").length, 0);
    const services = ofType("AWS::EC2::VPCEndpoint").map(([, e]) => JSON.stringify(e.Properties!.ServiceName));
    for (const s of ["s3", "dynamodb", "sqs", "ecr.api", "ecr.dkr", "logs"]) assert.ok(services.some((n) => n.includes(`.${s}`)), s);
  });
});

describe("one definition for the emulator and AWS", () => {
  const plan = localProvisioningPlan({ prefix: "serverless-tf" });

  it("creates the queues the local runtime creates, with the same attributes", () => {
    const byName = new Map(ofType("AWS::SQS::Queue").map(([id, q]) => [q.Properties!.QueueName as string, { id, p: q.Properties! }]));
    for (const q of plan.queues) {
      const queue = byName.get(q.name);
      const dlq = byName.get(q.dlq.name);
      assert.ok(queue && dlq, `${q.name} and ${q.dlq.name} are in the template`);
      assert.equal(queue.p.VisibilityTimeout, q.visibilityTimeoutSeconds);
      assert.deepEqual(queue.p.RedrivePolicy, { deadLetterTargetArn: { "Fn::GetAtt": [dlq.id, "Arn"] }, maxReceiveCount: q.dlq.maxReceiveCount });
      assert.equal(dlq.p.MessageRetentionPeriod, q.dlq.messageRetentionSeconds);
    }
  });

  it("creates the table the local runtime creates, with the same keys", () => {
    const [, table] = ofType("AWS::DynamoDB::Table")[0]!;
    assert.equal(table.Properties!.TableName, plan.tableName);
    assert.deepEqual(table.Properties!.KeySchema, [
      { AttributeName: plan.table.partitionKey, KeyType: "HASH" },
      { AttributeName: plan.table.sortKey, KeyType: "RANGE" },
    ]);
    assert.deepEqual(table.Properties!.AttributeDefinitions, [
      { AttributeName: plan.table.partitionKey, AttributeType: REGISTRY_TABLE.partitionKey.type },
      { AttributeName: plan.table.sortKey, AttributeType: REGISTRY_TABLE.sortKey.type },
    ]);
    assert.equal(table.Properties!.BillingMode, plan.table.billingMode);
    assert.equal(table.Properties!.TimeToLiveSpecification.AttributeName, plan.table.timeToLiveAttribute);
  });

  it("notifies the same queues of the same objects", () => {
    const { QueueConfigurations } = ofType("Custom::S3BucketNotifications")[0]![1].Properties!.NotificationConfiguration;
    const queueId = (key: RuntimeQueueKey) => ofType("AWS::SQS::Queue").find(([, q]) => q.Properties!.QueueName === queuePlan("serverless-tf", key).name)![0];
    assert.deepEqual(
      QueueConfigurations,
      plan.notifications.map((n) => ({
        Events: [...n.events],
        QueueArn: { "Fn::GetAtt": [queueId(n.queue), "Arn"] },
        Filter: { Key: { FilterRules: [...(n.suffix ? [{ Name: "suffix", Value: n.suffix }] : []), { Name: "prefix", Value: n.prefix }] } },
      })),
    );
    assert.deepEqual(plan.notifications.map((n) => n.queue).sort(), ["events", "fitTriggers"]);
  });

  it("provisions locally every runtime queue the stack has, except job-watch's", () => {
    const local = new Set(plan.queues.map((q) => q.name));
    assert.deepEqual(queueKeys.filter((k) => !local.has(queuePlan("serverless-tf", k).name)), ["jobWatch"]);
  });

  it("names the job-watch queue and its consumer as definitions.ts does, though locally runJob watches in-process", () => {
    // Arrange
    const plan = queuePlan("serverless-tf", "jobWatch");
    // Act
    const [queueId, queue] = ofType("AWS::SQS::Queue").find(([, q]) => q.Properties!.QueueName === plan.name)!;
    const mapping = ofType("AWS::Lambda::EventSourceMapping").find(([, m]) => m.Properties!.EventSourceArn["Fn::GetAtt"][0] === queueId)![1];
    // Assert
    assert.equal(plan.name, "serverless-tf-job-watch");
    assert.equal(queue.Properties!.VisibilityTimeout, FUNCTIONS["job-watch"].timeoutSeconds * VISIBILITY_PER_FUNCTION_TIMEOUT);
    assert.deepEqual(mapping.Properties!.FunctionName, { Ref: fnOf("job-watch")[0] });
    assert.equal(mapping.Properties!.BatchSize, 1, "one job's round per invocation");
  });
});
