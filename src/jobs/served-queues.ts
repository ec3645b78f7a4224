/**
 * A served model's queues (src/protocol/names.ts servedQueueName): its DLQ, its input queue
 * redriven to the DLQ, and its output queue. `serveModel` makes them on either runtime; the
 * construct's `servedModels` prop makes the same three at deploy time.
 */
import type { AwsClients } from "../aws/clients.ts";
import { servedQueueName } from "../protocol/names.ts";
import { DLQ_RETENTION_SECONDS } from "../resources/definitions.ts";
import { createQueue, queueArn } from "./queues.ts";

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

/** Creates (or finds: CreateQueue is idempotent for the same attributes) the queues of `modelId`; a URL given in `existing` is used as it is. */
export async function ensureServedQueues(clients: AwsClients, modelId: string, settings: ServedQueueSettings, existing: Partial<ServedQueues> = {}): Promise<ServedQueues> {
  const dlqUrl = existing.dlqUrl ?? (await createQueue(clients, servedQueueName.dlq(modelId), { MessageRetentionPeriod: String(DLQ_RETENTION_SECONDS) }));
  const redrive = JSON.stringify({ deadLetterTargetArn: await queueArn(clients, dlqUrl), maxReceiveCount: settings.maxReceiveCount });
  const inputQueueUrl = existing.inputQueueUrl ?? (await createQueue(clients, servedQueueName.input(modelId), { VisibilityTimeout: String(settings.visibilityTimeoutSeconds), RedrivePolicy: redrive }));
  const output = servedQueueName.output(modelId);
  const outputQueueUrl = existing.outputQueueUrl ?? (settings.fifoOutput ? await createQueue(clients, `${output}.fifo`, { FifoQueue: "true" }) : await createQueue(clients, output));
  return { inputQueueUrl, outputQueueUrl, dlqUrl };
}
