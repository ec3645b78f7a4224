/**
 * serverless-tf/cdk: the {@link ServerlessTf} construct, serverless-tf's resources in your own CDK app.
 *
 * @module serverless-tf/cdk
 */
import { Aws, type CfnElement, CfnOutput, Duration, Stack, Token } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as s3n from "aws-cdk-lib/aws-s3-notifications";
import { Construct } from "constructs";
import { SECRET_NAME_PREFIX, STREAM_SOURCE_QUEUE_PREFIX, servedQueueName } from "../src/protocol/names.ts";
import {
  BUCKET_PREFIXES,
  ENV,
  FUNCTIONS,
  JOB_QUEUE_PREFIX,
  jobRolePath,
  jobRoleName,
  SERVING_FUNCTION,
  STACK_OUTPUTS,
  layerArchitecture,
  localProvisioningPlan,
  mappingMaxConcurrency,
  registryTableNameFor,
  servedQueuePlan,
  type FunctionName,
  type LayerName,
} from "../src/resources/definitions.ts";
import { functionBundleDir, imageSources, layerDir } from "./code.ts";
import { acknowledge, wildcardUnderArn } from "./nag.ts";
import { resolveProps, type ResolvedProps, type ServerlessTfProps } from "./props.ts";
import { RuntimeQueues } from "./constructs/runtime-queues.ts";
import { ServedModelQueues } from "./constructs/served-model-queues.ts";
import { StageFunction, lambdaArchitecture, type StageCode } from "./constructs/stage-function.ts";
import { Storage } from "./constructs/storage.ts";
import { WorkerService } from "./constructs/worker-service.ts";

export type { FunctionSizing, GpuWorkers, ServedModel, ServerlessTfProps } from "./props.ts";
export type { LayerName } from "../src/resources/definitions.ts";
export { MissingFunctionBundleError, MissingImageSourceError, MissingLayerError } from "./errors.ts";

const SQS_ACTIONS = {
  /**
   * The coordinator owns a job's queues: it makes them, reads their attributes, deletes them. A
   * queue gets its encryption, redrive and TLS-only policy in its CreateQueue call
   * (src/jobs/queues.ts), which needs `sqs:CreateQueue` alone; with no `SetQueueAttributes` the
   * role cannot rewrite any queue's policy afterwards, and it tags nothing.
   */
  manage: ["sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
  send: ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
  consume: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
  /**
   * The job-watch stage finishes a job: it moves an inference job's output queue to S3, then
   * deletes the queues the coordinator made (by URL, from the spec).
   */
  finish: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:DeleteQueue"],
} as const;

/**
 * serverless-tf as a CDK construct for your own app: the resources the local runtime provisions on
 * the emulator, on real AWS. Storage (bucket, table), the runtime queues with DLQs, the stage
 * functions with their event sources (the zip functions from the bundles `npm run build` writes,
 * the inference function as a container image for its Python engine, the signature-inference zip
 * function with the onnxruntime layer for signature-mode models), the queues of the served
 * models, the bucket's notifications (exports, fit triggers), and the worker service (ECS
 * Fargate). Every permission comes from a statement here with named actions;
 * `test/infra/stack.test.ts` checks that and runs cdk-nag AwsSolutions on it.
 *
 * @example
 * import { Stack, type StackProps } from "aws-cdk-lib";
 * import type { Construct } from "constructs";
 * import { ServerlessTf } from "serverless-tf/cdk";
 *
 * class MlStack extends Stack {
 *   constructor(scope: Construct, id: string, props?: StackProps) {
 *     super(scope, id, props);
 *     new ServerlessTf(this, "Tf", {
 *       servedModels: ["digits", { modelId: "churn", servingMode: "signature" }],
 *       dataBucketNames: ["my-training-data"],
 *     });
 *   }
 * }
 */
export class ServerlessTf extends Construct {
  /** The props as built: every default filled in. */
  readonly settings: ResolvedProps;
  readonly storage: Storage;
  readonly queues: RuntimeQueues;
  readonly workers: WorkerService;
  readonly functions: Readonly<Record<FunctionName, StageFunction>>;
  /** The queues of each model in `servedModels`, by model id. */
  readonly servedModels: Readonly<Record<string, ServedModelQueues>>;

  constructor(scope: Construct, id: string, props: ServerlessTfProps = {}) {
    super(scope, id);
    const settings = resolveProps(props);
    this.settings = settings;
    const { prefix, sizing } = settings;
    const images = imageSources(settings.sourceDir);

    this.storage = new Storage(this, "Storage", { tableName: registryTableNameFor(prefix), removalPolicy: settings.removalPolicy });
    const timeouts = Object.fromEntries(Object.entries(sizing).map(([name, s]) => [name, s.timeoutSeconds])) as Record<FunctionName, number>;
    this.queues = new RuntimeQueues(this, "Queues", { prefix, timeoutSeconds: timeouts });
    this.workers = new WorkerService(this, "Workers", {
      imageDirectory: images.workerContext,
      cpu: settings.worker.cpu,
      memoryMiB: settings.worker.memoryMiB,
      ...(settings.gpuWorkers ? { gpu: settings.gpuWorkers } : {}),
    });
    const { bucket, table } = this.storage;
    const { queues } = this.queues;

    // S3 -> SQS, as the local runtime sets them: export.json (the last object of an export) to the
    // events queue, and every new object under training/ to the fit-triggers queue.
    for (const n of localProvisioningPlan({ prefix }).notifications) {
      bucket.addEventNotification(s3.EventType.OBJECT_CREATED, new s3n.SqsDestination(queues[n.queue].queue), { prefix: n.prefix, ...(n.suffix ? { suffix: n.suffix } : {}) });
    }
    this.acknowledgeNotificationsHandler();

    const layers = this.layers(settings.sourceDir);
    // Every function reads the same base settings (src/jobs/settings.ts functionConfigFromEnv), so
    // each gets them all: test/integration/hosted/ fails on a read of a setting the template leaves unset.
    const baseEnv = {
      [ENV.table]: table.tableName,
      [ENV.bucket]: bucket.bucketName,
      [ENV.shardFeedQueueUrl]: queues.shardFeed.queue.queueUrl,
      [ENV.jobWatchQueueUrl]: queues.jobWatch.queue.queueUrl,
    };
    const boundary = this.workerBoundary();
    const ecsEnv = {
      [ENV.launcher]: "ecs",
      [ENV.jobRoleBoundary]: boundary.managedPolicyArn,
      [ENV.workerCapacity]: settings.worker.capacity,
      [ENV.ecsCluster]: this.workers.cluster.clusterName,
      [ENV.ecsTaskDefinition]: this.workers.taskDefinition.taskDefinitionArn,
      [ENV.ecsContainer]: this.workers.container.containerName,
      [ENV.ecsSubnets]: this.workers.subnets.subnetIds.join(","),
      [ENV.ecsSecurityGroups]: this.workers.securityGroup.securityGroupId,
      ...(this.workers.gpu
        ? { [ENV.ecsGpuTaskDefinition]: this.workers.gpu.taskDefinition.taskDefinitionArn, [ENV.ecsGpuCapacityProvider]: this.workers.gpu.capacityProvider.capacityProviderName }
        : {}),
    };
    const pollers = (name: FunctionName) => mappingMaxConcurrency(sizing[name].reservedConcurrency);
    const make = (name: FunctionName, environment: Record<string, string>): StageFunction => {
      const definition = FUNCTIONS[name];
      const code: StageCode = definition.packaging === "image" ? { kind: "image", ...images.inference } : { kind: "zip", directory: functionBundleDir(settings.functionsDir, name) };
      return new StageFunction(this, pascal(name), { definition, code, environment, layers: (definition.layers ?? []).map((layer) => layers[layer]), ...sizing[name] });
    };

    const data = settings.dataBucketNames;
    const grantDataRead = (grantee: iam.IRole) => {
      if (!data.length) return;
      grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["s3:GetObject"], resources: data.map((b) => `arn:${Aws.PARTITION}:s3:::${b}/*`) }));
      grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["s3:ListBucket"], resources: data.map((b) => `arn:${Aws.PARTITION}:s3:::${b}`) }));
      // A name that is a token (`bucket.bucketName`) renders as cdk-nag chooses: its finding is the user's to acknowledge.
      for (const bucketName of data.filter((b) => !Token.isUnresolved(b))) {
        acknowledge(
          grantee,
          `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${bucketName}/*]`,
          "A data bucket the deployment names (dataBucketNames) holds the users' input tables under keys only a job's request gives: read-only access to its objects is the narrowest fixed scope.",
        );
      }
    };

    // Stream-feed: forwards a streaming fit's source queue (stf-stream-*) to its job's feed queue and
    // bad rows to its DLQ; the coordinator maps the queue to it when the job starts (src/jobs/stream-mapping.ts).
    const streamFeed = make("stream-feed", baseEnv);
    table.grantReadData(streamFeed.role);
    this.grantJobQueues(streamFeed.role, SQS_ACTIONS.send);
    this.grantQueuesNamed(
      streamFeed.role,
      `${STREAM_SOURCE_QUEUE_PREFIX}*`,
      SQS_ACTIONS.consume,
      `A streaming fit's source queue (${STREAM_SOURCE_QUEUE_PREFIX}<name>) is the user's, named at run time; Lambda refuses the coordinator's event source mapping unless this role may consume it already.`,
    );

    // Coordinator: makes a job's queues and registry items, stages code and shards, starts workers;
    // also starts a fit for each new object under training/ (fit-triggers queue, _fit.json beside it).
    const training = `${BUCKET_PREFIXES.training}*`;
    const coordinator = make("coordinator", { ...baseEnv, ...ecsEnv, [ENV.streamFeedFunction]: streamFeed.fn.functionName });
    this.grantStreamMappings(coordinator.role, streamFeed.fn.functionArn, ["lambda:CreateEventSourceMapping", "lambda:DeleteEventSourceMapping"]);
    // Every job it starts gets its first job-watch round.
    queues.jobWatch.queue.grantSendMessages(coordinator.role);
    table.grantReadWriteData(coordinator.role);
    this.grantJobQueues(coordinator.role, [...SQS_ACTIONS.manage, ...SQS_ACTIONS.send, "sqs:ReceiveMessage", "sqs:DeleteMessage"]);
    queues.shardFeed.queue.grantSendMessages(coordinator.role);
    this.storage.grantObjects(coordinator.role, ["GetObject", "PutObject", "DeleteObject"], ["jobs/*"]);
    this.storage.grantObjects(coordinator.role, ["GetObject"], ["models/*"]);
    this.storage.grantList(coordinator.role, ["jobs/", "models/"]);
    grantDataRead(coordinator.role);
    this.grantRunWorkers(coordinator.role);
    // Fit triggers: reads _fit.json and heads the new object, then lists it as the job's table.
    this.storage.grantObjects(coordinator.role, ["GetObject"], [training]);
    this.storage.grantList(coordinator.role, [BUCKET_PREFIXES.training]);
    coordinator.fn.addEventSource(new SqsEventSource(queues.fitTriggers.queue, { batchSize: queues.fitTriggers.plan.batchSize, reportBatchItemFailures: true, maxConcurrency: pollers("coordinator") }));

    // Shard-feed: reads a shard, sends rows to the members' feed queues, queues its continuation.
    const shardFeed = make("shard-feed", baseEnv);
    table.grantReadWriteData(shardFeed.role);
    this.grantJobQueues(shardFeed.role, SQS_ACTIONS.send);
    queues.shardFeed.queue.grantSendMessages(shardFeed.role);
    this.storage.grantObjects(shardFeed.role, ["GetObject"], ["jobs/*/shards/*", training]);
    grantDataRead(shardFeed.role);
    shardFeed.fn.addEventSource(new SqsEventSource(queues.shardFeed.queue, { batchSize: queues.shardFeed.plan.batchSize, reportBatchItemFailures: true, maxConcurrency: pollers("shard-feed") }));

    // Checkpoint: verifies an export, writes model metadata and moves `latest` (conditional put).
    const checkpoint = make("checkpoint", baseEnv);
    table.grantReadWriteData(checkpoint.role);
    this.storage.grantObjects(checkpoint.role, ["GetObject", "PutObject", "DeleteObject"], ["jobs/*/checkpoints/*", "models/*"]);
    this.storage.grantObjects(checkpoint.role, ["GetObject"], ["jobs/*"]);
    this.storage.grantList(checkpoint.role, ["jobs/", "models/"]);
    checkpoint.fn.addEventSource(new SqsEventSource(queues.events.queue, { batchSize: queues.events.plan.batchSize, reportBatchItemFailures: true, maxConcurrency: pollers("checkpoint") }));

    // Inference: serves the model its input queue is named for (stf-serve-<model>-input), loaded
    // from `latest`; writes typed rows to that model's output queue (or a job's), rejected rows to
    // its DLQ, and one idempotency record per served row (functions/inference/idempotency.ts) in
    // the registry. Its environment names no model: the queue of each batch does. Two functions
    // run the same handler: `inference` (image, Python engine) for script-mode models,
    // `signature-inference` (zip, ONNX Runtime from its layer) for signature-mode ones; each needs
    // what the other does.
    const serving = (name: FunctionName): StageFunction => {
      const fn = make(name, baseEnv);
      table.grantReadWriteData(fn.role);
      this.storage.grantObjects(fn.role, ["GetObject"], ["models/*"]);
      this.storage.grantList(fn.role, ["models/"]);
      // Sending covers every served model's output and DLQ (stf-serve-<model>-output, -dlq) and a job's output.
      this.grantJobQueues(fn.role, SQS_ACTIONS.send);
      // A model served later is mapped to its mode's function at run time (CreateEventSourceMapping),
      // which Lambda accepts only if the role may already consume its input queue.
      this.grantServedInputs(fn.role);
      return fn;
    };
    const inference = serving("inference");
    const signatureInference = serving("signature-inference");
    const servingFunctions: Record<(typeof SERVING_FUNCTION)[keyof typeof SERVING_FUNCTION], StageFunction> = { inference, "signature-inference": signatureInference };
    this.servedModels = Object.fromEntries(
      settings.servedModels.map(({ modelId, servingMode }) => {
        const name = SERVING_FUNCTION[servingMode];
        const served = new ServedModelQueues(this, `Serve-${modelId}`, servedQueuePlan(modelId, sizing[name].timeoutSeconds));
        servingFunctions[name].fn.addEventSource(
          new SqsEventSource(served.input, {
            batchSize: settings.inference.batchSize,
            maxBatchingWindow: Duration.seconds(settings.inference.maxBatchingWindowSeconds),
            reportBatchItemFailures: true,
            maxConcurrency: pollers(name),
          }),
        );
        return [modelId, served];
      }),
    );

    // Job-watch: one watch round per message (functions/job-watch/watch-round.ts): reads the registry and
    // fences members, describes the job's tasks, restarts them (RunTask), re-queues its own message;
    // finishing a job sets its final state, deletes its queues and stops its tasks. It reads
    // models/ for the published metadata (List: a missing key must be a 404, not a 403).
    const jobWatch = make("job-watch", { ...baseEnv, ...ecsEnv });
    table.grantReadWriteData(jobWatch.role);
    this.grantJobQueues(jobWatch.role, SQS_ACTIONS.finish);
    queues.jobWatch.queue.grantSendMessages(jobWatch.role);
    this.storage.grantObjects(jobWatch.role, ["GetObject"], ["models/*"]);
    this.storage.grantObjects(jobWatch.role, ["GetObject", "PutObject"], ["jobs/*/output/*"]);
    this.storage.grantList(jobWatch.role, ["models/", "jobs/*/output/"]);
    this.grantRunWorkers(jobWatch.role);
    jobWatch.fn.addEventSource(new SqsEventSource(queues.jobWatch.queue, { batchSize: queues.jobWatch.plan.batchSize, reportBatchItemFailures: true, maxConcurrency: pollers("job-watch") }));

    // It ends a streaming job's forwarding: deletes the mapping the coordinator made.
    this.grantStreamMappings(jobWatch.role, streamFeed.fn.functionArn, ["lambda:DeleteEventSourceMapping"]);

    this.functions = { coordinator, "shard-feed": shardFeed, checkpoint, inference, "signature-inference": signatureInference, "job-watch": jobWatch, "stream-feed": streamFeed };

    // Workers: the task definition's own role gets nothing. Each job's tasks run as the job's role
    // (src/workers/job-role.ts), which the coordinator makes within the worker boundary.
    this.grantJobRoles(coordinator.role, boundary, ["create", "delete"]);
    this.grantJobRoles(jobWatch.role, boundary, ["delete"]);

    if (settings.stackOutputs) {
      for (const [key, value] of Object.entries(this.outputValues())) new CfnOutput(this, key, { value }).overrideLogicalId(key);
    }
  }

  /**
   * What the stack outputs, by the keys of `STACK_OUTPUTS`: the names, URLs and ARNs a runtime for
   * the deployed stack reads (`StackRuntime.fromStack`), and the inference batching, so a model
   * served later is mapped as the stack's own are.
   */
  outputValues(): Record<string, string> {
    const { queues } = this.queues;
    return {
      [STACK_OUTPUTS.bucketName]: this.storage.bucket.bucketName,
      [STACK_OUTPUTS.tableName]: this.storage.table.tableName,
      [STACK_OUTPUTS.shardFeedQueueUrl]: queues.shardFeed.queue.queueUrl,
      [STACK_OUTPUTS.jobWatchQueueUrl]: queues.jobWatch.queue.queueUrl,
      [STACK_OUTPUTS.workerCluster]: this.workers.cluster.clusterName,
      [STACK_OUTPUTS.workerTaskDefinition]: this.workers.taskDefinition.taskDefinitionArn,
      [STACK_OUTPUTS.inferenceBatchSize]: String(this.settings.inference.batchSize),
      [STACK_OUTPUTS.inferenceMaxBatchingWindowSeconds]: String(this.settings.inference.maxBatchingWindowSeconds),
      ...Object.fromEntries((Object.keys(STACK_OUTPUTS.functionName) as FunctionName[]).map((name) => [STACK_OUTPUTS.functionName[name], this.functions[name].fn.functionName])),
    };
  }

  /** Per-job queues are `stf-<jobId>-*`, made at run time: the account's `stf-*` queues in this region. */
  private grantJobQueues(role: iam.IRole, actions: readonly string[]): void {
    this.grantQueuesNamed(
      role,
      `${JOB_QUEUE_PREFIX}*`,
      actions,
      `Per-job queues (${JOB_QUEUE_PREFIX}<jobId>-<purpose>: feeds, output, DLQ) and served models' queues (${servedQueueName.output("<modelId>")}, ${servedQueueName.dlq("<modelId>")}) are created at run time (docs/protocol.md): the name prefix in this account and region is the narrowest fixed scope.`,
    );
  }

  /** Consuming every served model's input queue, `stf-serve-*-input`, including those of models served later. */
  private grantServedInputs(role: iam.IRole): void {
    this.grantQueuesNamed(
      role,
      servedQueueName.input("*"),
      SQS_ACTIONS.consume,
      `A model served at run time gets its input queue ${servedQueueName.input("<modelId>")} and an event source mapping to this function then; Lambda refuses the mapping unless the role may consume the queue already, so the served input names in this account and region are the narrowest fixed scope.`,
    );
  }

  /** Event source mappings to the stream-feed function only (mappings have ids only once made). */
  private grantStreamMappings(role: iam.IRole, streamFeedArn: string, actions: readonly string[]): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: [...actions], resources: [`arn:${Aws.PARTITION}:lambda:${Aws.REGION}:${Aws.ACCOUNT_ID}:event-source-mapping:*`], conditions: { ArnLike: { "lambda:FunctionArn": streamFeedArn } } }),
    );
    acknowledge(
      role,
      "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:event-source-mapping:*]",
      "A streaming fit's event source mapping exists only once the coordinator makes it; the condition holds every mapping to the stack's stream-feed function.",
    );
  }

  private grantQueuesNamed(role: iam.IRole, namePattern: string, actions: readonly string[], reason: string): void {
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: [...new Set(actions)], resources: [`arn:${Aws.PARTITION}:sqs:${Aws.REGION}:${Aws.ACCOUNT_ID}:${namePattern}`] }));
    acknowledge(role, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:${namePattern}]`, reason);
  }

  /** RunTask of the worker task definitions (Fargate, and GPU if any) on the worker cluster only; stop and describe that cluster's tasks. */
  private grantRunWorkers(principal: iam.IRole): void {
    const { cluster } = this.workers;
    const taskDefinitions = [this.workers.taskDefinition, ...(this.workers.gpu ? [this.workers.gpu.taskDefinition] : [])];
    principal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["ecs:RunTask"], resources: taskDefinitions.map((t) => t.taskDefinitionArn), conditions: { ArnEquals: { "ecs:cluster": cluster.clusterArn } } }),
    );
    principal.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["ecs:TagResource"], resources: [`arn:${Aws.PARTITION}:ecs:${Aws.REGION}:${Aws.ACCOUNT_ID}:task/${cluster.clusterName}/*`], conditions: { StringEquals: { "ecs:CreateAction": "RunTask" } } }));
    principal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["ecs:DescribeTasks", "ecs:StopTask"], resources: [`arn:${Aws.PARTITION}:ecs:${Aws.REGION}:${Aws.ACCOUNT_ID}:task/${cluster.clusterName}/*`] }),
    );
    // The execution role pulls the image; the task runs as its job's role (`overrides.taskRoleArn`).
    principal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["iam:PassRole"],
        resources: [...taskDefinitions.map((t) => t.obtainExecutionRole().roleArn), this.jobRoleArns()],
        conditions: { StringEquals: { "iam:PassedToService": "ecs-tasks.amazonaws.com" } },
      }),
    );
    acknowledge(
      principal,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<${Stack.of(this).resolve((cluster.node.defaultChild as CfnElement).logicalId)}>/*]`,
      "Task ids exist only once RunTask returns; the worker cluster's tasks are the narrowest fixed scope for describing, tagging and stopping them.",
    );
  }

  /** The secrets a job may name in python.secrets: those under SECRET_NAME_PREFIX in this account and region. */
  private jobSecretArns(): string {
    return `arn:${Aws.PARTITION}:secretsmanager:${Aws.REGION}:${Aws.ACCOUNT_ID}:secret:${SECRET_NAME_PREFIX}*`;
  }

  /** Every job role of this deployment: `stf-<jobId>-worker` under its job role path. */
  private jobRoleArns(): string {
    return `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:role${jobRolePath(Aws.REGION, registryTableNameFor(this.settings.prefix))}${jobRoleName("*")}`;
  }

  /**
   * The most any job role may hold: what all workers together held before roles were per job.
   * A job role's own policy (src/workers/job-role.ts jobRolePolicy) narrows it to one job; the
   * coordinator can create a role only with this boundary, so it cannot make a wider one.
   */
  private workerBoundary(): iam.ManagedPolicy {
    const { bucket, table } = this.storage;
    const objects = (keys: readonly string[]) => keys.map((k) => bucket.arnForObjects(k));
    const boundary = new iam.ManagedPolicy(this, "WorkerBoundary", {
      description: "serverless-tf: the permissions boundary of every job's worker role",
      statements: [
        new iam.PolicyStatement({
          actions: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem", "dynamodb:Query"],
          resources: [table.tableArn],
        }),
        new iam.PolicyStatement({
          actions: [...new Set([...SQS_ACTIONS.consume, "sqs:SendMessage"])],
          resources: [`arn:${Aws.PARTITION}:sqs:${Aws.REGION}:${Aws.ACCOUNT_ID}:${JOB_QUEUE_PREFIX}*`],
        }),
        new iam.PolicyStatement({ actions: ["s3:GetObject"], resources: objects(["jobs/*", "models/*"]) }),
        new iam.PolicyStatement({
          actions: ["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"],
          resources: objects(["jobs/*/spool/*", "jobs/*/checkpoints/*", "jobs/*/output/*", "models/*/versions/*"]),
        }),
        new iam.PolicyStatement({ actions: ["s3:ListBucket"], resources: [bucket.bucketArn], conditions: { StringLike: { "s3:prefix": ["jobs/*", "models/*"] } } }),
        // A job's python.secrets, by ARN: only secrets named under the prefix users keep them in.
        new iam.PolicyStatement({ actions: ["secretsmanager:GetSecretValue"], resources: [this.jobSecretArns()] }),
      ],
    });
    const findings = [
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:${JOB_QUEUE_PREFIX}*]`,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${SECRET_NAME_PREFIX}*]`,
      ...["jobs/*", "models/*", "jobs/*/spool/*", "jobs/*/checkpoints/*", "jobs/*/output/*", "models/*/versions/*"].map((k) => wildcardUnderArn(bucket.node.defaultChild as s3.CfnBucket, k)),
    ];
    for (const id of findings) {
      acknowledge(
        boundary,
        id,
        "A permissions boundary grants nothing by itself: it caps the per-job roles, whose own policies name one job's queues, registry partition (dynamodb:LeadingKeys) and key prefixes (src/workers/job-role.ts).",
      );
    }
    return boundary;
  }

  /**
   * Making job roles (coordinator) and deleting them (coordinator and job-watch): only on the job
   * role path, and created or given a policy only with the worker boundary attached.
   */
  private grantJobRoles(role: iam.IRole, boundary: iam.ManagedPolicy, what: readonly ("create" | "delete")[]): void {
    const roles = this.jobRoleArns();
    if (what.includes("create")) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ["iam:CreateRole", "iam:PutRolePolicy"], resources: [roles], conditions: { StringEquals: { "iam:PermissionsBoundary": boundary.managedPolicyArn } } }),
      );
      role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["iam:TagRole"], resources: [roles] }));
    }
    if (what.includes("delete")) role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["iam:DeleteRolePolicy", "iam:DeleteRole"], resources: [roles] }));
    acknowledge(
      role,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role${jobRolePath("<AWS::Region>", registryTableNameFor(this.settings.prefix))}${jobRoleName("*")}]`,
      "One role per job, named by its job id at run time (src/workers/job-role.ts); creating one requires the worker permissions boundary.",
    );
  }

  /**
   * `bucket.addEventNotification` puts one Lambda per stack (BucketNotificationsHandler, the custom
   * resource that sets the notifications at deploy time) at the stack's root, outside this construct.
   */
  private acknowledgeNotificationsHandler(): void {
    for (const child of Stack.of(this).node.children) {
      if (!child.node.id.startsWith("BucketNotificationsHandler")) continue;
      acknowledge(
        child,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "CDK's BucketNotificationsHandler (the custom resource that sets the S3 -> events queue notification at deploy time) comes with this role; it runs only during deployments and its s3:PutBucketNotification grant is scoped to the bucket.",
      );
    }
  }

  /**
   * One layer version per layer of src/resources/definitions.ts, from its folder of `dist/layers/`
   * (scripts/build.ts assembles it for the architecture of the functions that name it, only).
   */
  private layers(sourceDir: string): Record<LayerName, lambda.ILayerVersion> {
    const layer = (name: LayerName) =>
      new lambda.LayerVersion(this, `Layer${pascal(name)}`, {
        code: lambda.Code.fromAsset(layerDir(sourceDir, name)),
        compatibleRuntimes: [lambda.Runtime.NODEJS_22_X],
        compatibleArchitectures: [lambdaArchitecture(layerArchitecture(name))],
        description: `serverless-tf ${name} layer (layers/${name}/README.md)`,
      });
    return { onnxruntime: layer("onnxruntime") };
  }
}

/** `shard-feed` -> `ShardFeed`: construct ids and output keys. */
export function pascal(name: string): string {
  return name.replace(/(^|-)([a-z0-9])/g, (_, __, c: string) => c.toUpperCase());
}
