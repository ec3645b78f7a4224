/**
 * The serverless-tf stack: the resources the local runtime provisions on the emulator, on real
 * AWS. Storage (bucket, table), the runtime queues with DLQs, the five stage functions with
 * their event sources (the inference function as a container image, for its Python engine), the
 * bucket's notifications (exports, fit triggers), and the worker service (ECS Fargate). Every permission comes from a
 * statement here with named actions; `test/infra/stack.test.ts` checks that and runs cdk-nag.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Annotations, Aws, CfnOutput, type CfnElement, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as s3n from "aws-cdk-lib/aws-s3-notifications";
import { Construct } from "constructs";
import { BUCKET_PREFIXES, DEFAULT_PREFIX, ENV, FUNCTIONS, JOB_QUEUE_PREFIX, localProvisioningPlan, registryTableNameFor, type FunctionName } from "../src/resources/definitions.ts";
import { acknowledge } from "./nag.ts";
import { RuntimeQueues } from "./constructs/runtime-queues.ts";
import { StageFunction, type StageCode } from "./constructs/stage-function.ts";
import { Storage } from "./constructs/storage.ts";
import { WorkerService } from "./constructs/worker-service.ts";

export interface FunctionSizing {
  readonly memoryMb?: number;
  readonly timeoutSeconds?: number;
  readonly reservedConcurrency?: number;
}

export interface ServerlessTfStackProps extends StackProps {
  /** The repository root (handlers, `python/`, `layers/`, `package-lock.json`). */
  readonly projectRoot: string;
  /** Prefix of the runtime queue and table names; default `serverless-tf`, as the local runtime uses. */
  readonly prefix?: string;
  /**
   * Handler modules by function, bundled as zips; default `functions/<name>/handler.ts` (or
   * `functions/<name>/Dockerfile` for an `image` function), left out when it does not exist yet.
   */
  readonly functionEntries?: Partial<Record<FunctionName, string>>;
  /** Memory, timeout and reserved concurrency per function, over `FUNCTIONS` in src/resources/definitions.ts. */
  readonly sizing?: Partial<Record<FunctionName, FunctionSizing>>;
  /** Buckets holding users' input tables (`Table.fromS3`): read by the coordinator and shard-feed. */
  readonly dataBucketNames?: readonly string[];
  readonly workerCpu?: number;
  readonly workerMemoryMiB?: number;
  /** Default RETAIN: the bucket and table outlive `cdk destroy`. */
  readonly removalPolicy?: RemovalPolicy;
}

const SQS_JOB_QUEUE_ACTIONS = {
  /** The coordinator owns a job's queues: it makes them, reads their attributes, deletes them. */
  manage: ["sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:GetQueueUrl", "sqs:TagQueue"],
  send: ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
  consume: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
  /**
   * The job-watch stage finishes a job: it moves an inference job's output queue to S3, then
   * deletes the queues the coordinator made (by URL, from the spec).
   */
  finish: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:DeleteQueue"],
} as const;

export class ServerlessTfStack extends Stack {
  readonly storage: Storage;
  readonly queues: RuntimeQueues;
  readonly workers: WorkerService;
  readonly functions: Partial<Record<FunctionName, StageFunction>> = {};

  constructor(scope: Construct, id: string, props: ServerlessTfStackProps) {
    super(scope, id, props);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const root = props.projectRoot;

    this.storage = new Storage(this, "Storage", { tableName: registryTableNameFor(prefix), ...(props.removalPolicy ? { removalPolicy: props.removalPolicy } : {}) });
    this.queues = new RuntimeQueues(this, "Queues", { prefix });
    this.workers = new WorkerService(this, "Workers", {
      imageDirectory: join(root, "python"),
      ...(props.workerCpu ? { cpu: props.workerCpu } : {}),
      ...(props.workerMemoryMiB ? { memoryMiB: props.workerMemoryMiB } : {}),
    });
    const { bucket, table } = this.storage;
    const { queues } = this.queues;

    // S3 -> SQS, as the local runtime sets them: export.json (the last object of an export) to the
    // events queue, and every new object under training/ to the fit-triggers queue.
    for (const n of localProvisioningPlan({ prefix }).notifications) {
      bucket.addEventNotification(s3.EventType.OBJECT_CREATED, new s3n.SqsDestination(queues[n.queue].queue), { prefix: n.prefix, ...(n.suffix ? { suffix: n.suffix } : {}) });
    }

    const layers = this.layers(root);
    const baseEnv = { [ENV.table]: table.tableName, [ENV.bucket]: bucket.bucketName, [ENV.shardFeedQueueUrl]: queues.shardFeed.queue.queueUrl };
    const watchEnv = { [ENV.jobWatchQueueUrl]: queues.jobWatch.queue.queueUrl };
    const ecsEnv = {
      [ENV.launcher]: "ecs",
      [ENV.ecsCluster]: this.workers.cluster.clusterName,
      [ENV.ecsTaskDefinition]: this.workers.taskDefinition.taskDefinitionArn,
      [ENV.ecsContainer]: this.workers.container.containerName,
      [ENV.ecsSubnets]: this.workers.subnets.subnetIds.join(","),
      [ENV.ecsSecurityGroups]: this.workers.securityGroup.securityGroupId,
    };
    const make = (name: FunctionName, environment: Record<string, string>): StageFunction | undefined => {
      const override = props.functionEntries?.[name];
      const code: StageCode =
        FUNCTIONS[name].packaging === "image" && !override
          ? { kind: "image", dockerfile: join(root, "functions", name, "Dockerfile") }
          : { kind: "bundle", entry: override ?? join(root, "functions", name, "handler.ts") };
      const source = code.kind === "image" ? code.dockerfile : code.entry;
      if (!existsSync(source)) {
        Annotations.of(this).addInfo(`${source} does not exist yet: the ${name} function is left out of this synth.`);
        return undefined;
      }
      const fn = new StageFunction(this, pascal(name), { definition: FUNCTIONS[name], code, projectRoot: root, environment, layers, ...props.sizing?.[name] });
      this.functions[name] = fn;
      new CfnOutput(this, `${pascal(name)}FunctionName`, { value: fn.fn.functionName });
      return fn;
    };

    const data = props.dataBucketNames ?? [];
    const grantDataRead = (grantee: iam.IRole) => {
      if (!data.length) return;
      grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["s3:GetObject"], resources: data.map((b) => `arn:${Aws.PARTITION}:s3:::${b}/*`) }));
      grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["s3:ListBucket"], resources: data.map((b) => `arn:${Aws.PARTITION}:s3:::${b}`) }));
    };

    // Coordinator: makes a job's queues and registry items, stages code and shards, starts workers;
    // also starts a fit for each new object under training/ (fit-triggers queue, _fit.json beside it).
    const training = `${BUCKET_PREFIXES.training}*`;
    const coordinator = make("coordinator", { ...baseEnv, ...ecsEnv, ...watchEnv });
    if (coordinator) {
      // Every job it starts gets its first job-watch round.
      queues.jobWatch.queue.grantSendMessages(coordinator.role);
      table.grantReadWriteData(coordinator.role);
      this.grantJobQueues(coordinator.role, [...SQS_JOB_QUEUE_ACTIONS.manage, ...SQS_JOB_QUEUE_ACTIONS.send, "sqs:ReceiveMessage", "sqs:DeleteMessage"]);
      queues.shardFeed.queue.grantSendMessages(coordinator.role);
      this.storage.grantObjects(coordinator.role, ["GetObject", "PutObject", "DeleteObject"], ["jobs/*"]);
      this.storage.grantObjects(coordinator.role, ["GetObject"], ["models/*"]);
      this.storage.grantList(coordinator.role, ["jobs/", "models/"]);
      grantDataRead(coordinator.role);
      this.grantRunWorkers(coordinator.role);
      // Fit triggers: reads _fit.json and heads the new object, then lists it as the job's table.
      this.storage.grantObjects(coordinator.role, ["GetObject"], [training]);
      this.storage.grantList(coordinator.role, [BUCKET_PREFIXES.training]);
      coordinator.fn.addEventSource(new SqsEventSource(queues.fitTriggers.queue, { batchSize: queues.fitTriggers.plan.batchSize, reportBatchItemFailures: true }));
    }

    // Shard-feed: reads a shard, sends rows to the members' feed queues, queues its continuation.
    const shardFeed = make("shard-feed", baseEnv);
    if (shardFeed) {
      table.grantReadWriteData(shardFeed.role);
      this.grantJobQueues(shardFeed.role, SQS_JOB_QUEUE_ACTIONS.send);
      queues.shardFeed.queue.grantSendMessages(shardFeed.role);
      this.storage.grantObjects(shardFeed.role, ["GetObject"], ["jobs/*/shards/*", training]);
      grantDataRead(shardFeed.role);
      shardFeed.fn.addEventSource(new SqsEventSource(queues.shardFeed.queue, { batchSize: queues.shardFeed.plan.batchSize, reportBatchItemFailures: true }));
    }

    // Checkpoint: verifies an export, writes model metadata and moves `latest` (conditional put).
    const checkpoint = make("checkpoint", baseEnv);
    if (checkpoint) {
      table.grantReadWriteData(checkpoint.role);
      this.storage.grantObjects(checkpoint.role, ["GetObject", "PutObject", "DeleteObject"], ["jobs/*/checkpoints/*", "models/*"]);
      this.storage.grantObjects(checkpoint.role, ["GetObject"], ["jobs/*"]);
      this.storage.grantList(checkpoint.role, ["jobs/", "models/"]);
      checkpoint.fn.addEventSource(new SqsEventSource(queues.events.queue, { batchSize: queues.events.plan.batchSize, reportBatchItemFailures: true }));
    }

    // Inference: loads the model named by `latest`, writes typed rows to a job's output queue,
    // and one idempotency record per served row (functions/inference/idempotency.ts) in the registry.
    const inference = make("inference", baseEnv);
    if (inference) {
      table.grantReadWriteData(inference.role);
      this.storage.grantObjects(inference.role, ["GetObject"], ["models/*"]);
      this.storage.grantList(inference.role, ["models/"]);
      this.grantJobQueues(inference.role, SQS_JOB_QUEUE_ACTIONS.send);
      inference.fn.addEventSource(new SqsEventSource(queues.inferenceInput.queue, { batchSize: queues.inferenceInput.plan.batchSize, reportBatchItemFailures: true }));
    }

    // Job-watch: one watch round per message (functions/job-watch/watch-round.ts): reads the registry and
    // fences members, describes the job's tasks, restarts them (RunTask), re-queues its own message;
    // finishing a job sets its final state, deletes its queues and stops its tasks. It reads
    // models/ for the published metadata (List: a missing key must be a 404, not a 403).
    const jobWatch = make("job-watch", { ...baseEnv, ...ecsEnv, ...watchEnv });
    if (jobWatch) {
      table.grantReadWriteData(jobWatch.role);
      this.grantJobQueues(jobWatch.role, SQS_JOB_QUEUE_ACTIONS.finish);
      queues.jobWatch.queue.grantSendMessages(jobWatch.role);
      this.storage.grantObjects(jobWatch.role, ["GetObject"], ["models/*"]);
      this.storage.grantObjects(jobWatch.role, ["GetObject", "PutObject"], ["jobs/*/output/*"]);
      this.storage.grantList(jobWatch.role, ["models/", "jobs/*/output/"]);
      this.grantRunWorkers(jobWatch.role);
      jobWatch.fn.addEventSource(new SqsEventSource(queues.jobWatch.queue, { batchSize: queues.jobWatch.plan.batchSize, reportBatchItemFailures: true }));
    }

    // Workers: registry, their job's feed and output queues, and their prefixes of the bucket.
    const taskRole = this.workers.taskDefinition.taskRole;
    table.grantReadWriteData(taskRole);
    this.grantJobQueues(taskRole, [...SQS_JOB_QUEUE_ACTIONS.consume, "sqs:SendMessage"]);
    this.storage.grantObjects(taskRole, ["GetObject"], ["jobs/*/code/*", "models/*"]);
    this.storage.grantObjects(taskRole, ["GetObject", "PutObject", "AbortMultipartUpload"], ["jobs/*/spool/*", "jobs/*/checkpoints/*", "jobs/*/output/*"]);
    // Spool parts and checkpoints are uploaded with their `stf-kind` tag, for the shorter lifecycle rules.
    this.storage.grantObjects(taskRole, ["PutObjectTagging"], ["jobs/*/spool/*", "jobs/*/checkpoints/*"]);
    this.storage.grantObjects(taskRole, ["PutObject", "AbortMultipartUpload"], ["models/*/versions/*"]);
    this.storage.grantList(taskRole, ["jobs/", "models/"]);

    new CfnOutput(this, "BucketName", { value: bucket.bucketName });
    new CfnOutput(this, "TableName", { value: table.tableName });
    new CfnOutput(this, "ShardFeedQueueUrl", { value: queues.shardFeed.queue.queueUrl });
    new CfnOutput(this, "InferenceInputQueueUrl", { value: queues.inferenceInput.queue.queueUrl });
    new CfnOutput(this, "WorkerCluster", { value: this.workers.cluster.clusterName });
    new CfnOutput(this, "WorkerTaskDefinition", { value: this.workers.taskDefinition.taskDefinitionArn });
  }

  /** Per-job queues are `stf-<jobId>-*`, made at run time: the account's `stf-*` queues in this region. */
  private grantJobQueues(role: iam.IRole, actions: readonly string[]): void {
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: [...new Set(actions)], resources: [`arn:${Aws.PARTITION}:sqs:${Aws.REGION}:${Aws.ACCOUNT_ID}:${JOB_QUEUE_PREFIX}*`] }));
    acknowledge(
      role,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:${JOB_QUEUE_PREFIX}*]`,
      `Per-job queues (feeds, output, DLQ) are created at run time as ${JOB_QUEUE_PREFIX}<jobId>-<purpose> (docs/protocol.md): the name prefix in this account and region is the narrowest fixed scope.`,
    );
  }

  /** RunTask of the worker task definition on the worker cluster only; stop and describe that cluster's tasks. */
  private grantRunWorkers(principal: iam.IRole): void {
    const { cluster, taskDefinition } = this.workers;
    principal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["ecs:RunTask"], resources: [taskDefinition.taskDefinitionArn], conditions: { ArnEquals: { "ecs:cluster": cluster.clusterArn } } }),
    );
    principal.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["ecs:TagResource"], resources: [`arn:${Aws.PARTITION}:ecs:${Aws.REGION}:${Aws.ACCOUNT_ID}:task/${cluster.clusterName}/*`], conditions: { StringEquals: { "ecs:CreateAction": "RunTask" } } }));
    principal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["ecs:DescribeTasks", "ecs:StopTask"], resources: [`arn:${Aws.PARTITION}:ecs:${Aws.REGION}:${Aws.ACCOUNT_ID}:task/${cluster.clusterName}/*`] }),
    );
    principal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["iam:PassRole"],
        resources: [taskDefinition.taskRole.roleArn, taskDefinition.obtainExecutionRole().roleArn],
        conditions: { StringEquals: { "iam:PassedToService": "ecs-tasks.amazonaws.com" } },
      }),
    );
    acknowledge(
      principal,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<${this.resolve((cluster.node.defaultChild as CfnElement).logicalId)}>/*]`,
      "Task ids exist only once RunTask returns; the worker cluster's tasks are the narrowest fixed scope for describing, tagging and stopping them.",
    );
  }

  /** One layer per `layers/<name>/` that holds a `nodejs/` folder (the Lambda layer layout); zip functions only. */
  private layers(root: string): lambda.ILayerVersion[] {
    const dir = join(root, "layers");
    if (!existsSync(dir)) return [];
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, "nodejs")))
      .map(
        (e) =>
          new lambda.LayerVersion(this, `Layer${pascal(e.name)}`, {
            code: lambda.Code.fromAsset(join(dir, e.name)),
            compatibleRuntimes: [lambda.Runtime.NODEJS_22_X],
            description: `serverless-tf layers/${e.name}`,
          }),
      );
  }
}

function pascal(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
}
