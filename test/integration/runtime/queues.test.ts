/** Queues made at run time, on the emulator: a job's are encrypted and TLS only; a served model's are found before they are made. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, it } from "node:test";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { createAwsClients, destroyAwsClients } from "../../../src/aws/clients.ts";
import { createJobQueues, deleteJobQueues } from "../../../src/jobs/queues.ts";
import { ensureServedQueues } from "../../../src/jobs/served-queues.ts";

const clients = createAwsClients();
const run = randomBytes(4).toString("hex");

after(() => destroyAwsClients(clients));

describe("run-time queues", () => {
  it("gives every queue of a job SQS-managed encryption and a policy refusing requests without TLS", async () => {
    const queues = await createJobQueues(clients, `queues-${run}`, ["worker-0", "worker-1"]);
    try {
      for (const url of [...Object.values(queues.feed), queues.output, queues.dlq]) {
        const { Attributes = {} } = await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["All"] }));
        assert.equal(Attributes.SqsManagedSseEnabled, "true", url);
        const statement = (JSON.parse(Attributes.Policy ?? "{}") as { Statement?: { Effect: string; Condition?: { Bool?: Record<string, string> } }[] }).Statement?.[0];
        assert.deepEqual([statement?.Effect, statement?.Condition?.Bool?.["aws:SecureTransport"]], ["Deny", "false"], url);
      }
    } finally {
      await deleteJobQueues(clients, queues, { includeDlq: true });
    }
  });

  it("finds a served model's existing queues instead of creating them again with other settings", async () => {
    const first = await ensureServedQueues(clients, `queues-${run}`, { visibilityTimeoutSeconds: 60, maxReceiveCount: 3 });
    const again = await ensureServedQueues(clients, `queues-${run}`, { visibilityTimeoutSeconds: 360, maxReceiveCount: 5 });
    assert.deepEqual(again, first);
    const { Attributes = {} } = await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: first.inputQueueUrl, AttributeNames: ["VisibilityTimeout"] }));
    assert.equal(Attributes.VisibilityTimeout, "60", "the queue as it was made");
  });
});
