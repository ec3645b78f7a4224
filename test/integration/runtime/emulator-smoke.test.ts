import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, describe, it } from "node:test";
import { ConditionalCheckFailedException, CreateTableCommand, DeleteTableCommand, PutItemCommand, GetItemCommand } from "@aws-sdk/client-dynamodb";
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { CreateQueueCommand, DeleteQueueCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { awsSettingsFromEnv, createAwsClients, destroyAwsClients } from "../../../src/aws/clients.ts";
import { ConfigError } from "../../../src/errors.ts";

describe("the AWS client factory", () => {
  it("points every service at AWS_ENDPOINT_URL with emulator credentials and a per-service override", () => {
    const settings = awsSettingsFromEnv({ AWS_ENDPOINT_URL: "http://127.0.0.1:4566", AWS_ENDPOINT_URL_SQS: "http://127.0.0.1:9324" });
    assert.equal(settings.endpoints.s3, "http://127.0.0.1:4566");
    assert.equal(settings.endpoints.dynamodb, "http://127.0.0.1:4566");
    assert.equal(settings.endpoints.sqs, "http://127.0.0.1:9324");
    assert.deepEqual(settings.credentials, { accessKeyId: "test", secretAccessKey: "test" });
  });

  it("uses real AWS endpoints and the default credential chain when no endpoint is set", () => {
    const settings = awsSettingsFromEnv({ AWS_REGION: "eu-west-1" });
    assert.equal(settings.region, "eu-west-1");
    assert.deepEqual(settings.endpoints, { s3: undefined, sqs: undefined, dynamodb: undefined });
    assert.equal(settings.credentials, undefined);
  });

  it("rejects an endpoint that is not a URL, naming the variable", () => {
    assert.throws(() => awsSettingsFromEnv({ AWS_ENDPOINT_URL: "localhost:4566" }), (e: unknown) => e instanceof ConfigError && e.message.includes("AWS_ENDPOINT_URL") && e.message.includes("localhost:4566"));
  });
});

describe("the emulator", () => {
  const clients = createAwsClients();
  const name = `smoke-${randomUUID().slice(0, 8)}`;
  after(() => destroyAwsClients(clients));

  it("serves a bucket, a queue and a table, and refuses a second conditional write of the same key", async () => {
    // Arrange
    await clients.s3.send(new CreateBucketCommand({ Bucket: name }));
    const { QueueUrl } = await clients.sqs.send(new CreateQueueCommand({ QueueName: name }));
    await clients.dynamodb.send(
      new CreateTableCommand({
        TableName: name,
        BillingMode: "PAY_PER_REQUEST",
        AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
        KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
      }),
    );
    try {
      // Act
      await clients.s3.send(new PutObjectCommand({ Bucket: name, Key: "hello.txt", Body: "hi" }));
      const body = await (await clients.s3.send(new GetObjectCommand({ Bucket: name, Key: "hello.txt" }))).Body!.transformToString();
      await clients.sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: "ping" }));
      const received = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 2 }));
      const put = (value: string) =>
        clients.dynamodb.send(new PutItemCommand({ TableName: name, Item: { pk: { S: "job" }, v: { S: value } }, ConditionExpression: "attribute_not_exists(pk)" }));
      await put("first");
      const second = put("second");

      // Assert
      assert.equal(body, "hi");
      assert.equal(received.Messages?.[0]?.Body, "ping");
      await assert.rejects(second, ConditionalCheckFailedException);
      const item = await clients.dynamodb.send(new GetItemCommand({ TableName: name, Key: { pk: { S: "job" } }, ConsistentRead: true }));
      assert.equal(item.Item?.v?.S, "first");
    } finally {
      await clients.s3.send(new DeleteObjectCommand({ Bucket: name, Key: "hello.txt" }));
      await clients.s3.send(new DeleteBucketCommand({ Bucket: name }));
      await clients.sqs.send(new DeleteQueueCommand({ QueueUrl }));
      await clients.dynamodb.send(new DeleteTableCommand({ TableName: name }));
    }
  });
});
