/**
 * One served model's queues, `stf-serve-<modelId>-input`, `-output` and `-dlq`, with the
 * attributes of `servedQueuePlan` (src/resources/definitions.ts). The inference handler finds
 * the model, the output queue and the DLQ from the input queue's name (`servedModelOfQueue`,
 * src/protocol/names.ts), so a model needs no setting on the function: the stack maps the input
 * queue to the function of the model's serving mode (`SERVING_FUNCTION`), and a model served
 * later is mapped the same way at run time.
 */
import { Duration } from "aws-cdk-lib";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import type { ServedQueuePlan } from "../../src/resources/definitions.ts";
import { acknowledge } from "../nag.ts";
import { encryptedQueue } from "./runtime-queues.ts";

export class ServedModelQueues extends Construct {
  readonly input: sqs.Queue;
  readonly output: sqs.Queue;
  readonly dlq: sqs.Queue;

  constructor(
    scope: Construct,
    id: string,
    readonly plan: ServedQueuePlan,
  ) {
    super(scope, id);
    const size = { maxMessageSizeBytes: plan.maxMessageSizeBytes };
    this.dlq = encryptedQueue(this, "Dlq", { ...size, queueName: plan.dlq.name, retentionPeriod: Duration.seconds(plan.dlq.messageRetentionSeconds) });
    this.output = encryptedQueue(this, "Output", { ...size, queueName: plan.output.name });
    acknowledge(
      this.output,
      "AwsSolutions-SQS3",
      "The output queue holds answers for the caller that sent the requests, who reads each once; a redrive would move answers a slow reader received several times into the DLQ of rejected requests, where no reader looks for them.",
    );
    this.input = encryptedQueue(this, "Input", {
      ...size,
      queueName: plan.input.name,
      visibilityTimeout: Duration.seconds(plan.input.visibilityTimeoutSeconds),
      deadLetterQueue: { queue: this.dlq, maxReceiveCount: plan.input.maxReceiveCount },
    });
  }
}
