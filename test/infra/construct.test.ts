/**
 * The construct as a user composes it: `ServerlessTf` in the user's own Stack, in a fresh App
 * (not the repository's app or stack class), with served models in both serving modes, a larger
 * inference batch and other sizes, and cdk-nag's AwsSolutions pack on the whole app. Synthesized
 * once for the file.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { App, Stack, Validations, type StackProps } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import * as ssm from "aws-cdk-lib/aws-ssm";
import { ASSET_RESOURCE_METADATA_ENABLED_CONTEXT } from "aws-cdk-lib/cx-api";
import { AwsSolutionsChecks } from "cdk-nag";
import type { Construct } from "constructs";
import { ServerlessTf } from "../../infra/serverless-tf.ts";
import { servedQueueName } from "../../src/protocol/names.ts";
import { DLQ_RETENTION_SECONDS, ENV, FUNCTIONS, MAX_RECEIVE_COUNT, STACK_OUTPUTS, VISIBILITY_PER_FUNCTION_TIMEOUT, WORKER_CONTAINER, WORKER_STOP_TIMEOUT_SECONDS, type FunctionName } from "../../src/resources/definitions.ts";
import { SQS_MAX_MESSAGE_BYTES } from "../../src/protocol/limits.ts";

type Resources = Record<string, { Type: string; Properties?: Record<string, any>; Metadata?: Record<string, any> }>;

/** The user's stack: their own resource beside the construct, which they give their own id. */
class MlPlatformStack extends Stack {
  readonly tf: ServerlessTf;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    new ssm.StringParameter(this, "TeamOwner", { parameterName: "/ml/owner", stringValue: "ml-platform" });
    this.tf = new ServerlessTf(this, "Tf", {
      prefix: "ml-team",
      servedModels: ["digits", { modelId: "churn-v2", servingMode: "script" }, { modelId: "fraud", servingMode: "signature" }],
      dataBucketNames: ["acme-training-data"],
      inferenceBatchSize: 50,
      inferenceMaxBatchingWindowSeconds: 5,
      sizing: { inference: { timeoutSeconds: 120, memoryMb: 3008 }, "signature-inference": { timeoutSeconds: 30 }, "shard-feed": { timeoutSeconds: 300 } },
      workerCpu: 4096,
      workerMemoryMiB: 16384,
      gpuWorkers: { instanceType: "g5.2xlarge", maxInstances: 4, cpu: 7168, memoryMiB: 28672 },
    });
  }
}

/** Script mode: served by the inference image. */
const models = ["digits", "churn-v2"];
/** Signature mode: served by the signature-inference zip function. */
const signatureModel = "fraud";
let outdir = "";
let resources: Resources;
let template: Template;
let synthError: unknown;

before(() => {
  outdir = mkdtempSync(join(tmpdir(), "stf-construct-"));
  const app = new App({ outdir, context: { [ASSET_RESOURCE_METADATA_ENABLED_CONTEXT]: true } });
  const stack = new MlPlatformStack(app, "MlPlatform");
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }));
  try {
    template = Template.fromJSON(app.synth().getStackByName(stack.stackName).template);
    resources = template.toJSON().Resources as Resources;
  } catch (e) {
    synthError = e;
  }
});

after(() => rmSync(outdir, { recursive: true, force: true }));

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const queueNamed = (name: string) => {
  const found = ofType("AWS::SQS::Queue").find(([, q]) => q.Properties!.QueueName === name);
  assert.ok(found, `a queue named ${name}`);
  return found;
};
const fnOf = (name: FunctionName) => {
  const pascal = name.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
  const found = ofType("AWS::Lambda::Function").filter(([id]) => id.startsWith(`Tf${pascal}`));
  assert.equal(found.length, 1, `one ${name} function`);
  return found[0]!;
};

describe("ServerlessTf in the user's own stack", () => {
  it("synthesizes in a fresh App with every cdk-nag AwsSolutions finding fixed or acknowledged", () => {
    if (synthError) {
      const report = join(outdir, "validation-report.json");
      assert.fail(`synth failed: ${String(synthError)}\n${existsSync(report) ? readFileSync(report, "utf8").slice(0, 4000) : ""}`);
    }
  });

  it("adds its resources under its own id beside the user's", () => {
    // Arrange
    const ids = Object.keys(resources);
    // Act
    const outside = ids.filter((id) => !id.startsWith("Tf") && !id.startsWith("BucketNotificationsHandler") && resources[id]!.Type !== "AWS::CDK::Metadata");
    // Assert
    assert.deepEqual(outside.map((id) => resources[id]!.Type), ["AWS::SSM::Parameter"], "the user's parameter is the only other resource");
    assert.equal(ofType("AWS::Lambda::Function").filter(([id]) => id.startsWith("Tf")).length, Object.keys(FUNCTIONS).length);
    template.hasResourceProperties("AWS::DynamoDB::Table", { TableName: "ml-team-registry" });
    for (const suffix of ["shard-feed", "events", "fit-triggers", "job-watch"]) queueNamed(`ml-team-${suffix}`);
    template.hasResourceProperties("AWS::ECS::TaskDefinition", { Cpu: "4096", Memory: "16384" });
    // The time between SIGTERM and SIGKILL a worker has to save its set's checkpoint.
    template.hasResourceProperties("AWS::ECS::TaskDefinition", { ContainerDefinitions: Match.arrayWith([Match.objectLike({ Name: WORKER_CONTAINER, StopTimeout: WORKER_STOP_TIMEOUT_SECONDS })]) });
    const [, inference] = fnOf("inference");
    assert.deepEqual([inference.Properties!.Timeout, inference.Properties!.MemorySize], [120, 3008]);
  });

  it("gives the user's stack the outputs StackRuntime.fromStack reads, under the keys of STACK_OUTPUTS", () => {
    // Arrange
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    const { functionName, ...others } = STACK_OUTPUTS;
    // Act
    const keys = Object.keys(outputs).sort();
    // Assert
    assert.deepEqual(keys, [...Object.values(others), ...Object.values(functionName)].sort());
    assert.deepEqual(outputs[STACK_OUTPUTS.functionName.inference]!.Value, { Ref: fnOf("inference")[0] });
    assert.deepEqual([outputs[STACK_OUTPUTS.inferenceBatchSize]!.Value, outputs[STACK_OUTPUTS.inferenceMaxBatchingWindowSeconds]!.Value], ["50", "5"]);
  });

  it("sizes a runtime queue's visibility timeout by its consumer's timeout as deployed", () => {
    const [, shardFeed] = fnOf("shard-feed");
    assert.equal(shardFeed.Properties!.Timeout, 300);
    assert.equal(queueNamed("ml-team-shard-feed")[1].Properties!.VisibilityTimeout, 300 * VISIBILITY_PER_FUNCTION_TIMEOUT);
  });

  it("reads the data buckets it is given, from the coordinator and shard-feed", () => {
    const reads = ofType("AWS::IAM::Policy").filter(([, p]) => JSON.stringify(p.Properties!.PolicyDocument).includes(":s3:::acme-training-data/*"));
    assert.deepEqual(reads.map(([id]) => id.replace(/RoleDefaultPolicy.*$/, "")).sort(), ["TfCoordinator", "TfShardFeed"]);
  });
});

describe("served models", () => {
  it("creates stf-serve-<model>-input, -output and -dlq per model, encrypted and TLS only, with the input redriving to the DLQ", () => {
    for (const model of models) {
      // Arrange
      const [inputId, input] = queueNamed(servedQueueName.input(model));
      const [outputId, output] = queueNamed(servedQueueName.output(model));
      const [dlqId, dlq] = queueNamed(servedQueueName.dlq(model));
      // Act
      const tlsOnly = ofType("AWS::SQS::QueuePolicy")
        .filter(([, p]) => p.Properties!.PolicyDocument.Statement.some((s: any) => s.Effect === "Deny" && s.Condition?.Bool?.["aws:SecureTransport"] === "false"))
        .flatMap(([, p]) => p.Properties!.Queues.map((q: any) => q.Ref as string));
      // Assert
      assert.equal(input.Properties!.VisibilityTimeout, 120 * VISIBILITY_PER_FUNCTION_TIMEOUT, "6 x the inference function's timeout as deployed");
      assert.deepEqual(input.Properties!.RedrivePolicy, { deadLetterTargetArn: { "Fn::GetAtt": [dlqId, "Arn"] }, maxReceiveCount: MAX_RECEIVE_COUNT });
      assert.equal(dlq.Properties!.MessageRetentionPeriod, DLQ_RETENTION_SECONDS);
      assert.equal(output.Properties!.RedrivePolicy, undefined, "answers are read by the caller, not redriven");
      for (const [id, q] of [[inputId, input], [outputId, output], [dlqId, dlq]] as const) {
        assert.equal(q.Properties!.MaximumMessageSize, SQS_MAX_MESSAGE_BYTES, `${q.Properties!.QueueName} takes SQS's largest messages`);
        assert.equal(q.Properties!.SqsManagedSseEnabled, true, `${q.Properties!.QueueName} is encrypted`);
        assert.ok(tlsOnly.includes(id), `${q.Properties!.QueueName} refuses plain HTTP`);
      }
    }
    assert.equal(ofType("AWS::SQS::Queue").filter(([, q]) => String(q.Properties!.QueueName).startsWith("stf-serve-")).length, 3 * (models.length + 1));
  });

  it("maps each model's input queue to the inference function with the batch size, batching window and partial batch failures it was given", () => {
    // Arrange
    const [inferenceId] = fnOf("inference");
    for (const model of models) {
      const [inputId] = queueNamed(servedQueueName.input(model));
      // Act
      const mapping = ofType("AWS::Lambda::EventSourceMapping").find(([, m]) => m.Properties!.EventSourceArn["Fn::GetAtt"]?.[0] === inputId)?.[1];
      // Assert
      assert.ok(mapping, `a mapping from ${servedQueueName.input(model)}`);
      assert.deepEqual(mapping.Properties!.FunctionName, { Ref: inferenceId });
      assert.equal(mapping.Properties!.BatchSize, 50);
      assert.equal(mapping.Properties!.MaximumBatchingWindowInSeconds, 5);
      assert.deepEqual(mapping.Properties!.FunctionResponseTypes, ["ReportBatchItemFailures"]);
    }
  });

  it("maps a signature-mode model's input queue to the signature-inference zip function, its visibility sized by that function's timeout", () => {
    // Arrange
    const [signatureId, signature] = fnOf("signature-inference");
    const [inputId, input] = queueNamed(servedQueueName.input(signatureModel));
    const [dlqId] = queueNamed(servedQueueName.dlq(signatureModel));
    // Act
    const mappings = ofType("AWS::Lambda::EventSourceMapping").filter(([, m]) => m.Properties!.EventSourceArn["Fn::GetAtt"]?.[0] === inputId);
    // Assert
    assert.equal(mappings.length, 1, "one function serves the model");
    const [[, mapping]] = mappings as [[string, any]];
    assert.deepEqual(mapping.Properties!.FunctionName, { Ref: signatureId });
    assert.deepEqual([mapping.Properties!.BatchSize, mapping.Properties!.MaximumBatchingWindowInSeconds], [50, 5]);
    assert.deepEqual(mapping.Properties!.FunctionResponseTypes, ["ReportBatchItemFailures"]);
    assert.equal(mapping.Properties!.ScalingConfig.MaximumConcurrency, FUNCTIONS["signature-inference"].reservedConcurrency);
    assert.equal(signature.Properties!.Timeout, 30);
    assert.equal(input.Properties!.VisibilityTimeout, 30 * VISIBILITY_PER_FUNCTION_TIMEOUT);
    assert.deepEqual(input.Properties!.RedrivePolicy, { deadLetterTargetArn: { "Fn::GetAtt": [dlqId, "Arn"] }, maxReceiveCount: MAX_RECEIVE_COUNT });
    const [inferenceId] = fnOf("inference");
    const toImage = ofType("AWS::Lambda::EventSourceMapping").filter(([, m]) => m.Properties!.FunctionName.Ref === inferenceId);
    assert.equal(toImage.length, models.length, "the image serves the script-mode models only");
  });

  it("gives the signature-inference function the onnxruntime layer, and the image none", () => {
    const layers = ofType("AWS::Lambda::LayerVersion");
    assert.equal(layers.length, 1);
    assert.deepEqual(fnOf("signature-inference")[1].Properties!.Layers, [{ Ref: layers[0]![0] }]);
    assert.equal(fnOf("inference")[1].Properties!.Layers, undefined);
    for (const name of ["coordinator", "shard-feed", "checkpoint", "job-watch", "stream-feed"] as const) assert.equal(fnOf(name)[1].Properties!.Layers, undefined, name);
  });

  it("gives the inference function no model, output queue or DLQ in its environment", () => {
    const vars = fnOf("inference")[1].Properties!.Environment.Variables as Record<string, unknown>;
    assert.deepEqual(Object.keys(vars).sort(), [ENV.bucket, ENV.jobWatchQueueUrl, ENV.shardFeedQueueUrl, ENV.table].sort());
    for (const gone of ["SERVERLESS_TF_MODEL_ID", "SERVERLESS_TF_OUTPUT_QUEUE_URL", "SERVERLESS_TF_DLQ_URL"]) assert.equal(vars[gone], undefined, gone);
  });

  it("lets the inference role consume any served input queue and send to stf-* (every served output and DLQ), so serving a model later needs no new grant", () => {
    // Arrange
    const statements = ofType("AWS::IAM::Policy")
      .filter(([id]) => id.startsWith("TfInferenceRole"))
      .flatMap(([, p]) => p.Properties!.PolicyDocument.Statement as any[]);
    const sqsArn = (name: string) => JSON.stringify({ "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":sqs:", { Ref: "AWS::Region" }, ":", { Ref: "AWS::AccountId" }, `:${name}`]] });
    // Act
    const actionsOn = (name: string) => statements.filter((s) => JSON.stringify(s.Resource) === sqsArn(name)).flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]) as string[]);
    // Assert
    assert.deepEqual(actionsOn(servedQueueName.input("*")).sort(), ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]);
    assert.deepEqual(actionsOn("stf-*").sort(), ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"]);
  });
});

describe("GPU workers", () => {
  const gpuTask = () => {
    const found = ofType("AWS::ECS::TaskDefinition").filter(([, td]) => (td.Properties!.RequiresCompatibilities as string[]).includes("EC2"));
    assert.equal(found.length, 1, "one EC2 task definition: the GPU workers'");
    return found[0]!;
  };

  it("scales GPU instances from zero up to maxInstances through a managed capacity provider of the worker cluster", () => {
    const [, group] = ofType("AWS::AutoScaling::AutoScalingGroup")[0]!;
    assert.deepEqual([group.Properties!.MinSize, group.Properties!.MaxSize], ["0", "4"]);
    const [providerId, provider] = ofType("AWS::ECS::CapacityProvider")[0]!;
    assert.equal(provider.Properties!.AutoScalingGroupProvider.ManagedScaling.Status, "ENABLED");
    const [, associations] = ofType("AWS::ECS::ClusterCapacityProviderAssociations")[0]!;
    const names = (associations.Properties!.CapacityProviders as unknown[]).map((p) => JSON.stringify(p));
    assert.ok(names.includes('"FARGATE"') && names.includes('"FARGATE_SPOT"'), "Fargate and Spot stay");
    assert.ok(names.some((n) => n.includes(providerId)), "the GPU provider joins them");
  });

  it("launches the instance type asked for from the ECS GPU-optimized AMI, IMDSv2 only, on an encrypted root volume", () => {
    const [, launchTemplate] = ofType("AWS::EC2::LaunchTemplate")[0]!;
    const data = launchTemplate.Properties!.LaunchTemplateData;
    assert.equal(data.InstanceType, "g5.2xlarge");
    const parameters = JSON.stringify(template.toJSON().Parameters ?? {});
    assert.match(parameters, /\/aws\/service\/ecs\/optimized-ami\/amazon-linux-2023\/gpu\/recommended\/image_id/, "the AMI from ECS's public SSM parameter");
    assert.equal(data.MetadataOptions.HttpTokens, "required");
    assert.deepEqual([data.BlockDeviceMappings[0].Ebs.Encrypted, data.BlockDeviceMappings[0].Ebs.VolumeType], [true, "gp3"]);
  });

  it("reaches ECS from the isolated subnets through endpoints, as the instances must to register", () => {
    const services = ofType("AWS::EC2::VPCEndpoint").map(([, e]) => JSON.stringify(e.Properties!.ServiceName));
    for (const s of ["ecs", "ecs-agent", "ecs-telemetry"]) assert.ok(services.some((n) => n.includes(`.${s}"`)), s);
  });

  it("runs the image's gpu target with the GPUs, size and stop timeout asked for, in awsvpc mode as on Fargate", () => {
    const [, td] = gpuTask();
    assert.equal(td.Properties!.NetworkMode, "awsvpc", "the launcher's awsvpcConfiguration and per-task addresses");
    const [container] = td.Properties!.ContainerDefinitions as any[];
    assert.equal(container.Name, WORKER_CONTAINER);
    assert.deepEqual(container.ResourceRequirements, [{ Type: "GPU", Value: "1" }]);
    assert.deepEqual([container.Cpu, container.Memory, container.StopTimeout], [7168, 28672, WORKER_STOP_TIMEOUT_SECONDS]);
    const images = JSON.parse(readFileSync(join(outdir, "MlPlatform.assets.json"), "utf8")).dockerImages;
    assert.ok((Object.values(images) as any[]).some((i) => i.source.dockerBuildTarget === "gpu"), "an image asset built with --target gpu");
  });

  it("tells the coordinator and the job watch the GPU task definition and provider, and lets them run it and pass its execution role", () => {
    const [providerId] = ofType("AWS::ECS::CapacityProvider")[0]!;
    const [gpuTaskId, gpuTask_] = gpuTask();
    const executionRole = JSON.stringify(gpuTask_.Properties!.ExecutionRoleArn);
    for (const name of ["coordinator", "job-watch"] as const) {
      const [, fn] = fnOf(name);
      const vars = fn.Properties!.Environment.Variables;
      assert.deepEqual(vars[ENV.ecsGpuTaskDefinition], { Ref: gpuTaskId }, name);
      assert.deepEqual(vars[ENV.ecsGpuCapacityProvider], { Ref: providerId }, name);
      const roleId = fn.Properties!.Role["Fn::GetAtt"][0] as string;
      const statements = ofType("AWS::IAM::Policy")
        .filter(([, p]) => JSON.stringify(p.Properties!.Roles).includes(roleId))
        .flatMap(([, p]) => p.Properties!.PolicyDocument.Statement as any[]);
      const runTask = statements.find((s) => s.Action === "ecs:RunTask");
      assert.ok(JSON.stringify(runTask.Resource).includes(gpuTaskId), `${name} may RunTask the GPU task definition`);
      const passRole = statements.find((s) => s.Action === "iam:PassRole");
      assert.ok(JSON.stringify(passRole.Resource).includes(executionRole), `${name} may pass the GPU task's execution role`);
    }
  });
});
