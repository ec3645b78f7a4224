import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import type { AwsClients } from "../../src/aws/clients.ts";

/** Messages waiting and in flight on a queue (SQS's approximate counts; exact on the emulator). */
export async function queueDepth(clients: AwsClients, queueUrl: string): Promise<{ visible: number; inFlight: number }> {
  const { Attributes = {} } = await clients.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }),
  );
  return { visible: Number(Attributes.ApproximateNumberOfMessages), inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible) };
}
