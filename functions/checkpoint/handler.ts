/** Lambda: publishes finished exports as model versions (S3 notifications through SQS). */
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { runCheckpointBatch } from "../../src/checkpoint/checkpoint-stage.ts";
import { stageDeps } from "../../src/stage/deps.ts";

export const handler = (event: SQSEvent): Promise<SQSBatchResponse> => runCheckpointBatch(stageDeps(), event);
