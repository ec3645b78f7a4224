/**
 * Fuzzing every handler's event parsing: arbitrary JSON (and arbitrary text) never crashes a
 * parser or a stage; it is rejected with the typed EventShapeError, or acted on when valid.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { SQSEvent } from "aws-lambda";
import { EventShapeError } from "../../../src/protocol/errors.ts";
import { parseCoordinatorEvent } from "../../../src/protocol/start-request.ts";
import { parseJobWatchEvent } from "../../../src/protocol/watch-message.ts";
import { parseS3Notification } from "../../../src/protocol/s3-notification.ts";
import { parseShardFeedEvent } from "../../../src/protocol/shard-feed-request.ts";
import { createCheckpointHandler } from "../../../functions/checkpoint/handler.ts";
import { createShardFeedHandler } from "../../../functions/shard-feed/handler.ts";
import { type FunctionDeps } from "../../../src/jobs/deps.ts";

const bodies = fc.oneof(
  fc.json(),
  fc.string(),
  fc.jsonValue().map((v) => JSON.stringify({ jobId: "fit-abc", shard: v })),
  fc.jsonValue().map((v) => JSON.stringify({ Records: [{ s3: { bucket: { name: v }, object: { key: v } } }] })),
  fc.jsonValue().map((v) => JSON.stringify({ action: "start", request: { mode: "train", cluster: v }, watch: v })),
  fc.jsonValue().map((v) => JSON.stringify({ v: 1, jobId: "fit-abc", round: v, state: v, policy: v, workers: v })),
  fc.nat(20_000).map((depth) => "[".repeat(depth) + "]".repeat(depth)),
);

/** A stage dependency that fails loudly if a malformed event ever reached AWS. */
const unreachable = new Proxy({}, { get: () => assert.fail("a malformed event reached the AWS clients") }) as unknown as FunctionDeps;

function sqsEvent(body: string): SQSEvent {
  return { Records: [{ messageId: "m-1", receiptHandle: "r", body, attributes: {} as never, messageAttributes: {}, md5OfBody: "", eventSource: "aws:sqs", eventSourceARN: "arn:aws:sqs:us-east-1:1:q", awsRegion: "us-east-1" }] };
}

const onlyTyped = (parse: (body: string) => unknown) => (body: string) => {
  try {
    parse(body);
  } catch (e) {
    assert.ok(e instanceof EventShapeError, `expected EventShapeError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
};

describe("event parsing under arbitrary input", () => {
  it("parses a shard-feed request or rejects it with EventShapeError, never anything else", () => {
    fc.assert(fc.property(bodies, onlyTyped(parseShardFeedEvent)), { numRuns: 500 });
  });

  it("parses an S3 notification or rejects it with EventShapeError, never anything else", () => {
    fc.assert(fc.property(bodies, onlyTyped(parseS3Notification)), { numRuns: 500 });
  });

  it("parses a coordinator start or rejects it with EventShapeError, never anything else", () => {
    fc.assert(fc.property(bodies, onlyTyped((body) => parseCoordinatorEvent(body, { bucket: "artifacts" }))), { numRuns: 500 });
  });

  it("parses a job-watch message or rejects it with EventShapeError, never anything else", () => {
    fc.assert(fc.property(bodies, onlyTyped(parseJobWatchEvent)), { numRuns: 500 });
  });

  it("takes a start's watch overrides and names a bad one", () => {
    const request = {
      mode: "train", cluster: { worker: 1 }, python: { scripts: ["s3://artifacts/code/m.py"], entry: "train" }, input: { columns: [{ name: "x", dtype: "FLOAT32", shape: "scalar" }] },
      batchSize: 4, remainder: { policy: "drop" }, source: { kind: "s3", uri: "s3://artifacts/input/" },
    };
    assert.deepEqual(parseCoordinatorEvent({ action: "start", request }, { bucket: "artifacts" }).watch, {});
    assert.deepEqual(parseCoordinatorEvent({ action: "start", request, watch: { maxWorkerRestarts: 0, progressTimeoutMs: 5_000 } }, { bucket: "artifacts" }).watch, { maxWorkerRestarts: 0, progressTimeoutMs: 5_000 });
    assert.throws(() => parseCoordinatorEvent({ action: "start", request, watch: { maxWorkerRestarts: -1 } }, { bucket: "artifacts" }), (e: unknown) => e instanceof EventShapeError && e.field === "event.watch.maxWorkerRestarts");
    assert.throws(() => parseCoordinatorEvent({ action: "start", request, watch: { timeoutMs: 0 } }, { bucket: "artifacts" }), (e: unknown) => e instanceof EventShapeError && e.field === "event.watch.timeoutMs");
    assert.throws(() => parseCoordinatorEvent({ action: "start", request, watch: { timeoutMS: 5_000 } }, { bucket: "artifacts" }), (e: unknown) => e instanceof EventShapeError && e.field === "event.watch.timeoutMS", "a misspelt setting is named, not ignored");
  });

  it("accepts a well-formed shard-feed request and names the field of a bad one", () => {
    const ok = parseShardFeedEvent(JSON.stringify({ jobId: "fit-abc", shard: { shardId: "s00001", index: 1, uri: "s3://b/k.jsonl", format: "jsonl" } }));
    assert.equal(ok.shard.index, 1);
    assert.throws(() => parseShardFeedEvent(JSON.stringify({ jobId: "fit-abc", shard: { shardId: "s1", index: -1, uri: "s3://b/k", format: "jsonl" } })), /shard\.index/);
  });

  it("decodes URL-encoded S3 keys the way S3 sends them, and reads a test event as no objects", () => {
    assert.deepEqual(parseS3Notification(JSON.stringify({ Records: [{ s3: { bucket: { name: "b" }, object: { key: "models/m/a+b%2Fexport.json" } } }] })), [{ bucket: "b", key: "models/m/a b/export.json" }]);
    assert.deepEqual(parseS3Notification(JSON.stringify({ Event: "s3:TestEvent" })), []);
  });

  it("never lets a malformed record crash the shard-feed or checkpoint stage, nor retries it", async () => {
    await fc.assert(
      fc.asyncProperty(bodies, async (body) => {
        let shaped = true;
        try {
          parseShardFeedEvent(body);
          shaped = false;
        } catch {
          // malformed: the stage must drop it without touching AWS
        }
        if (shaped) {
          const response = await createShardFeedHandler(unreachable, () => undefined)(sqsEvent(body));
          assert.deepEqual(response.batchItemFailures, []);
        }
        let s3Shaped = true;
        try {
          s3Shaped = parseS3Notification(body).every((o) => !o.key.endsWith("export.json")) ? true : false;
        } catch {
          s3Shaped = true;
        }
        if (s3Shaped) {
          const response = await createCheckpointHandler(unreachable, () => undefined)(sqsEvent(body));
          assert.deepEqual(response.batchItemFailures, []);
        }
      }),
      { numRuns: 300 },
    );
  });
});
