/**
 * A served model's queues (src/protocol/names.ts servedQueueName): its DLQ, its input queue
 * redriven to the DLQ, and its output queue. `serveModel` makes them on either runtime; the
 * construct's `servedModels` prop makes the same three at deploy time.
 */
import type { AwsClients } from "../aws/clients.ts";
import { servedQueueName } from "../protocol/names.ts";
import { DLQ_RETENTION_SECONDS } from "../resources/definitions.ts";
import { GetQueueUrlCommand, QueueDoesNotExist } from "@aws-sdk/client-sqs";
import { createProtectedQueue, queueArn } from "./queues.ts";

export interface ServedQueues {
  readonly inputQueueUrl: string;
  readonly outputQueueUrl: string;
  readonly dlqUrl: string;
}

export interface ServedQueueSettings {
  /** The input queue's visibility timeout. */
  readonly visibilityTimeoutSeconds: number;
  /** Receives of an input message before SQS moves it to the DLQ. */
  readonly maxReceiveCount: number;
  /** The output queue as FIFO (`...-output.fifo`): sends then carry the row id as deduplication id. */
  readonly fifoOutput?: boolean;
}

/**
 * Finds the queues of `modelId`, creating those that do not exist (a queue the construct made is
 * used as it is: CreateQueue refuses an existing name with other attribute values); a URL given in
 * `existing` is used as it is.
 */
export async function ensureServedQueues(clients: AwsClients, modelId: string, settings: ServedQueueSettings, existing: Partial<ServedQueues> = {}): Promise<ServedQueues> {
  const found = async (name: string, create: () => Promise<string>): Promise<string> => {
    try {
      return (await clients.sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl!;
    } catch (e) {
      if (e instanceof QueueDoesNotExist) return create();
      throw e;
    }
  };
  const dlqName = servedQueueName.dlq(modelId);
  const dlqUrl = existing.dlqUrl ?? (await found(dlqName, () => createProtectedQueue(clients, dlqName, { MessageRetentionPeriod: String(DLQ_RETENTION_SECONDS) })));
  const inputName = servedQueueName.input(modelId);
  const inputQueueUrl =
    existing.inputQueueUrl ??
    (await found(inputName, async () => {
      const redrive = JSON.stringify({ deadLetterTargetArn: await queueArn(clients, dlqUrl), maxReceiveCount: settings.maxReceiveCount });
      return createProtectedQueue(clients, inputName, { VisibilityTimeout: String(settings.visibilityTimeoutSeconds), RedrivePolicy: redrive });
    }));
  const outputName = settings.fifoOutput ? `${servedQueueName.output(modelId)}.fifo` : servedQueueName.output(modelId);
  const outputQueueUrl = existing.outputQueueUrl ?? (await found(outputName, () => createProtectedQueue(clients, outputName, settings.fifoOutput ? { FifoQueue: "true" } : {})));
  return { inputQueueUrl, outputQueueUrl, dlqUrl };
}
