/**
 * The serverless-tf stack of this repository's CDK app (infra/app.ts): the `ServerlessTf`
 * construct alone in a stack, and the outputs a runtime for the deployed stack reads
 * (`STACK_OUTPUTS`, src/resources/definitions.ts). In your own app, put the construct in your
 * own stack instead (`import { ServerlessTf } from "serverless-tf/cdk"`).
 */
import { CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { STACK_OUTPUTS, type FunctionName } from "../src/resources/definitions.ts";
import { ServerlessTf, type ServerlessTfProps } from "./serverless-tf.ts";

export interface ServerlessTfStackProps extends StackProps, ServerlessTfProps {}

export class ServerlessTfStack extends Stack {
  readonly tf: ServerlessTf;

  constructor(scope: Construct, id: string, props: ServerlessTfStackProps = {}) {
    super(scope, id, props);
    const tf = new ServerlessTf(this, "ServerlessTf", props);
    this.tf = tf;
    const { bucket, table } = tf.storage;
    const { queues } = tf.queues;
    const outputs: Record<string, string> = {
      [STACK_OUTPUTS.bucketName]: bucket.bucketName,
      [STACK_OUTPUTS.tableName]: table.tableName,
      [STACK_OUTPUTS.shardFeedQueueUrl]: queues.shardFeed.queue.queueUrl,
      [STACK_OUTPUTS.jobWatchQueueUrl]: queues.jobWatch.queue.queueUrl,
      [STACK_OUTPUTS.workerCluster]: tf.workers.cluster.clusterName,
      [STACK_OUTPUTS.workerTaskDefinition]: tf.workers.taskDefinition.taskDefinitionArn,
      [STACK_OUTPUTS.inferenceBatchSize]: String(tf.settings.inference.batchSize),
      [STACK_OUTPUTS.inferenceMaxBatchingWindowSeconds]: String(tf.settings.inference.maxBatchingWindowSeconds),
      ...Object.fromEntries((Object.keys(STACK_OUTPUTS.functionName) as FunctionName[]).map((name) => [STACK_OUTPUTS.functionName[name], tf.functions[name].fn.functionName])),
    };
    for (const [key, value] of Object.entries(outputs)) new CfnOutput(this, key, { value });
  }
}
