/**
 * The queues a job owns: one feed queue per data member, an output queue, and one
 * dead-letter queue that every other queue redrives to.
 */
import { CreateQueueCommand, DeleteMessageBatchCommand, DeleteQueueCommand, GetQueueAttributesCommand, QueueDoesNotExist, ReceiveMessageCommand, type Message } from "@aws-sdk/client-sqs";
import type { AwsClients } from "../aws/clients.ts";
import { queueName, type MemberKey } from "../protocol/names.ts";
import type { JobQueues } from "../protocol/spec.ts";
import { DEFAULT_QUEUE_SETTINGS, type QueueSettings } from "../protocol/start-request.ts";
import { SQS_MAX_MESSAGE_BYTES } from "../protocol/limits.ts";

/**
 * Creates a queue (or finds it, when it exists with the same attributes), taking messages up to
 * SQS's limit: the one way queues are made, for jobs, the local runtime and served models.
 */
export async function createQueue(clients: AwsClients, name: string, attributes: Readonly<Record<string, string>> = {}): Promise<string> {
  const { QueueUrl } = await clients.sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: { MaximumMessageSize: String(SQS_MAX_MESSAGE_BYTES), ...attributes } }));
  return QueueUrl!;
}

/**
 * What every queue made at run time carries, as the stack's own queues do: SQS-managed encryption
 * at rest and a policy that refuses any request not made over TLS, both set at creation.
 */
export function protectedQueueAttributes(name: string): Record<string, string> {
  const policy = {
    Version: "2012-10-17",
    Statement: [{ Sid: "TlsOnly", Effect: "Deny", Principal: "*", Action: "sqs:*", Resource: `arn:aws:sqs:*:*:${name}`, Condition: { Bool: { "aws:SecureTransport": "false" } } }],
  };
  return { SqsManagedSseEnabled: "true", Policy: JSON.stringify(policy) };
}

/** Creates a run-time queue with {@link protectedQueueAttributes}. */
export function createProtectedQueue(clients: AwsClients, name: string, attributes: Readonly<Record<string, string>> = {}): Promise<string> {
  return createQueue(clients, name, { ...protectedQueueAttributes(name), ...attributes });
}

export async function queueArn(clients: AwsClients, url: string): Promise<string> {
  const { Attributes } = await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }));
  return Attributes!.QueueArn!;
}

export async function createJobQueues(clients: AwsClients, jobId: string, members: readonly MemberKey[], settings: QueueSettings = DEFAULT_QUEUE_SETTINGS): Promise<JobQueues> {
  // 14 days: a dead letter outlives the job that produced it, so its reason can still be read.
  const dlq = await createProtectedQueue(clients, queueName.dlq(jobId), { MessageRetentionPeriod: String(14 * 24 * 3600) });
  const redrive = JSON.stringify({ deadLetterTargetArn: await queueArn(clients, dlq), maxReceiveCount: settings.maxReceiveCount });
  const attributes = { VisibilityTimeout: String(settings.visibilityTimeoutSeconds), RedrivePolicy: redrive };
  const feedEntries = await Promise.all(members.map(async (m) => [m, await createProtectedQueue(clients, queueName.feed(jobId, m), attributes)] as const));
  const output = await createProtectedQueue(clients, queueName.output(jobId), attributes);
  return { feed: Object.fromEntries(feedEntries) as Record<MemberKey, string>, output, dlq };
}

/** Deletes the job's queues; the DLQ stays unless `includeDlq`, so dead letters can be inspected. */
export async function deleteJobQueues(clients: AwsClients, queues: JobQueues, options: { includeDlq?: boolean } = {}): Promise<void> {
  const urls = [...Object.values(queues.feed), queues.output, ...(options.includeDlq ? [queues.dlq] : [])];
  await Promise.all(
    urls.map(async (QueueUrl) => {
      try {
        await clients.sqs.send(new DeleteQueueCommand({ QueueUrl }));
      } catch (e) {
        if (!(e instanceof QueueDoesNotExist)) throw e;
      }
    }),
  );
}

/** Messages waiting and in flight on a queue (SQS's approximate counts; exact on the emulator). */
export async function queueDepth(clients: AwsClients, queueUrl: string): Promise<{ visible: number; inFlight: number }> {
  const { Attributes = {} } = await clients.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }),
  );
  return { visible: Number(Attributes.ApproximateNumberOfMessages), inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible) };
}

/**
 * Receives up to 10 messages (long polling up to `waitSeconds`), hands them to `handle`, and
 * deletes them once it returned: a `handle` that throws leaves them to come back. Returns how many
 * were received. A delete that fails leaves that message to come back too, so `handle` must
 * tolerate seeing a message again.
 */
export async function takeMessages(clients: AwsClients, queueUrl: string, handle: (messages: readonly Message[]) => void | Promise<void>, waitSeconds = 1): Promise<number> {
  const { Messages = [] } = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: waitSeconds }));
  if (!Messages.length) return 0;
  await handle(Messages);
  await clients.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
  return Messages.length;
}
