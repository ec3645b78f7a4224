/**
 * The runtime-wide queues (shard-feed requests, S3 events, fit triggers, job-watch rounds), each
 * with its DLQ, named and sized by `queuePlan` from `src/resources/definitions.ts`: the same plan
 * the local runtime provisions on the emulator. Per-job queues are not here: the coordinator
 * creates them at run time (`src/jobs/queues.ts`); served models' are `ServedModelQueues`.
 */
import { Duration } from "aws-cdk-lib";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { RUNTIME_QUEUES, queuePlan, type FunctionName, type QueuePlan, type RuntimeQueueKey } from "../../src/resources/definitions.ts";

export interface RuntimeQueue {
  readonly plan: QueuePlan;
  readonly queue: sqs.Queue;
  readonly dlq: sqs.Queue;
}

export interface RuntimeQueuesProps {
  readonly prefix: string;
  /** Each function's timeout as deployed: a queue's visibility timeout is 6 times its consumer's. */
  readonly timeoutSeconds: Readonly<Record<FunctionName, number>>;
}

/**
 * Every queue of the stack: SSE-SQS, which encrypts at rest with no key policy to manage and, unlike
 * a queue under the AWS managed KMS key (aws/sqs), can receive S3 notifications; and a policy that
 * refuses plain HTTP.
 */
export function encryptedQueue(scope: Construct, id: string, props: sqs.QueueProps): sqs.Queue {
  return new sqs.Queue(scope, id, { encryption: sqs.QueueEncryption.SQS_MANAGED, enforceSSL: true, ...props });
}

export class RuntimeQueues extends Construct {
  readonly queues: Readonly<Record<RuntimeQueueKey, RuntimeQueue>>;

  constructor(scope: Construct, id: string, props: RuntimeQueuesProps) {
    super(scope, id);
    const make = (key: RuntimeQueueKey): RuntimeQueue => {
      const plan = queuePlan(props.prefix, key, props.timeoutSeconds[RUNTIME_QUEUES[key].consumer]);
      const dlq = encryptedQueue(this, `${key}Dlq`, { queueName: plan.dlq.name, maxMessageSizeBytes: plan.maxMessageSizeBytes, retentionPeriod: Duration.seconds(plan.dlq.messageRetentionSeconds) });
      const queue = encryptedQueue(this, key, {
        queueName: plan.name,
        maxMessageSizeBytes: plan.maxMessageSizeBytes,
        visibilityTimeout: Duration.seconds(plan.visibilityTimeoutSeconds),
        deadLetterQueue: { queue: dlq, maxReceiveCount: plan.dlq.maxReceiveCount },
      });
      return { plan, queue, dlq };
    };
    this.queues = Object.fromEntries((Object.keys(RUNTIME_QUEUES) as RuntimeQueueKey[]).map((k) => [k, make(k)])) as Record<RuntimeQueueKey, RuntimeQueue>;
  }
}
