/**
 * The runtime-wide queues (shard-feed requests, S3 events, inference input), each with its DLQ,
 * named and sized by `queuePlan` from `src/resources/definitions.ts`: the same plan the local
 * runtime provisions on the emulator. Per-job queues are not here: the coordinator creates them
 * at run time (`src/jobs/queues.ts`).
 */
import { Duration } from "aws-cdk-lib";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { RUNTIME_QUEUES, queuePlan, type QueuePlan, type RuntimeQueueKey } from "../../src/resources/definitions.ts";

export interface RuntimeQueue {
  readonly plan: QueuePlan;
  readonly queue: sqs.Queue;
  readonly dlq: sqs.Queue;
}

export class RuntimeQueues extends Construct {
  readonly queues: Readonly<Record<RuntimeQueueKey, RuntimeQueue>>;

  constructor(scope: Construct, id: string, props: { readonly prefix: string }) {
    super(scope, id);
    const make = (key: RuntimeQueueKey): RuntimeQueue => {
      const plan = queuePlan(props.prefix, key);
      // SSE-SQS: encrypted at rest with no key policy to manage; S3 can deliver notifications
      // to it, which an SQS queue under the AWS managed KMS key (aws/sqs) cannot.
      const common = { encryption: sqs.QueueEncryption.SQS_MANAGED, enforceSSL: true, maxMessageSizeBytes: plan.maxMessageSizeBytes };
      const dlq = new sqs.Queue(this, `${key}Dlq`, { ...common, queueName: plan.dlq.name, retentionPeriod: Duration.seconds(plan.dlq.messageRetentionSeconds) });
      const queue = new sqs.Queue(this, key, {
        ...common,
        queueName: plan.name,
        visibilityTimeout: Duration.seconds(plan.visibilityTimeoutSeconds),
        deadLetterQueue: { queue: dlq, maxReceiveCount: plan.dlq.maxReceiveCount },
      });
      return { plan, queue, dlq };
    };
    this.queues = Object.fromEntries((Object.keys(RUNTIME_QUEUES) as RuntimeQueueKey[]).map((k) => [k, make(k)])) as Record<RuntimeQueueKey, RuntimeQueue>;
  }
}
