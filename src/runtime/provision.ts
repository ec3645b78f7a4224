/**
 * Provisioning of the embedded default: the resources the stack defines (src/resources/definitions.ts),
 * created on the emulator or on the endpoint given, under the same names and settings.
 */
import { BucketAlreadyOwnedByYou, CreateBucketCommand, PutBucketNotificationConfigurationCommand, type Event } from "@aws-sdk/client-s3";
import type { AwsClients } from "../aws/clients.ts";
import { createQueue, queueArn } from "../jobs/queues.ts";
import { ensureRegistryTable } from "../registry/table.ts";
import { DEFAULT_PREFIX, DLQ_RETENTION_SECONDS, MAX_RECEIVE_COUNT, localProvisioningPlan, queuePlan, runtimeQueueName, type RuntimeQueueKey } from "../resources/definitions.ts";

/** Runtime-wide queues the local runtime polls: shard-feed requests, S3 notifications for the checkpoint stage and for fit triggers. */
export const RUNTIME_QUEUES = { shardFeed: runtimeQueueName(DEFAULT_PREFIX, "shardFeed"), events: runtimeQueueName(DEFAULT_PREFIX, "events"), fitTriggers: runtimeQueueName(DEFAULT_PREFIX, "fitTriggers") } as const;

type LocalQueueKey = keyof typeof RUNTIME_QUEUES;

/**
 * A queue and its DLQ, redriven after `maxReceiveCount` receives.
 *
 * @example
 * const url = await createQueueWithDlq(clients, "serverless-tf-events", { visibilityTimeoutSeconds: 60 });
 */
export async function createQueueWithDlq(
  clients: AwsClients,
  name: string,
  options: { readonly visibilityTimeoutSeconds: number; readonly maxReceiveCount?: number; readonly dlqName?: string },
): Promise<{ readonly url: string; readonly dlqUrl: string }> {
  const dlqUrl = await createQueue(clients, options.dlqName ?? `${name}-dlq`, { MessageRetentionPeriod: String(DLQ_RETENTION_SECONDS) });
  const redrive = JSON.stringify({ deadLetterTargetArn: await queueArn(clients, dlqUrl), maxReceiveCount: options.maxReceiveCount ?? MAX_RECEIVE_COUNT });
  const url = await createQueue(clients, name, { VisibilityTimeout: String(options.visibilityTimeoutSeconds), RedrivePolicy: redrive });
  return { url, dlqUrl };
}

/** Creates the bucket, the registry table, the runtime queues and the bucket's notifications; returns the queue URLs. */
export async function provisionLocalStack(
  clients: AwsClients,
  names: { readonly tableName: string; readonly bucket: string; readonly trainingPrefix?: string },
): Promise<Readonly<Record<LocalQueueKey, string>>> {
  await clients.s3.send(new CreateBucketCommand({ Bucket: names.bucket })).catch((e: unknown) => {
    if (!(e instanceof BucketAlreadyOwnedByYou)) throw e;
  });
  await ensureRegistryTable(clients, names.tableName);
  const plan = localProvisioningPlan(names);
  const urls = Object.fromEntries(
    await Promise.all(
      (Object.keys(RUNTIME_QUEUES) as LocalQueueKey[]).map(async (key) => [key, (await createQueueWithDlq(clients, RUNTIME_QUEUES[key], { visibilityTimeoutSeconds: queuePlan(DEFAULT_PREFIX, key as RuntimeQueueKey).visibilityTimeoutSeconds })).url] as const),
    ),
  ) as Record<LocalQueueKey, string>;
  // The one place the bucket's notifications are set (a put replaces them all), as the stack
  // sets them (S3 refuses overlapping filters: the plan's prefixes are disjoint).
  await clients.s3.send(
    new PutBucketNotificationConfigurationCommand({
      Bucket: names.bucket,
      NotificationConfiguration: {
        QueueConfigurations: await Promise.all(
          plan.notifications.map(async (n) => ({
            QueueArn: await queueArn(clients, urls[n.queue as LocalQueueKey]),
            Events: [...n.events] as Event[],
            Filter: { Key: { FilterRules: [{ Name: "prefix" as const, Value: n.prefix }, ...(n.suffix ? [{ Name: "suffix" as const, Value: n.suffix }] : [])] } },
          })),
        ),
      },
    }),
  );
  return urls;
}
