/** Lambda: publishes finished exports as model versions (S3 notifications through SQS). */
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { runCheckpointBatch } from "./batch.ts";
import { stageDeps } from "../../src/jobs/deps-from-env.ts";

export const handler = (event: SQSEvent): Promise<SQSBatchResponse> => runCheckpointBatch(stageDeps(), event);
