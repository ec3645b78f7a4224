/**
 * Event-triggered training: a data object under the training prefix starts one fit through
 * the coordinator, with its params from `_fit.json` beside it, through moto's real S3 -> SQS
 * notification; a duplicate event for the same object starts nothing more.
 */
import { startFitTriggers } from "../../../src/api/fit-triggers.ts";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { GetQueueUrlCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { modelKeys } from "../../../src/protocol/names.ts";
import { LocalRuntime, RUNTIME_QUEUES } from "../../../src/runtime/local-runtime.ts";
import { getJson, headObject, listKeys, putJson, putObject } from "../../../src/storage/objects.ts";
import { FIT_SPEC_OBJECT, fitJobId } from "../../../functions/coordinator/fit-trigger.ts";
import { SCALE_MODEL } from "../../helpers/models.ts";

describe("fit triggers", () => {
  let runtime: LocalRuntime;
  let stopTriggers: () => Promise<void>;
  const lines: string[] = [];

  before(async () => {
    runtime = await LocalRuntime.start({ functionLog: (line) => lines.push(line) });
    stopTriggers = startFitTriggers(runtime, (line) => lines.push(line));
  });

  after(async () => {
    await stopTriggers?.();
    await runtime?.close();
  });

  it("starts one fit per new data object, with the params of _fit.json, even when the event comes twice", { timeout: 180_000 }, async () => {
    // Arrange: the script, then _fit.json, then the data (its key URL-encoded in the event: a space)
    const { bucket, deps } = runtime;
    const modelId = `trig-${Date.now().toString(36)}`;
    const folder = `training/${modelId} set/`;
    const script = { bucket, key: `code/${modelId}/scale_model.py` };
    await putObject(deps.clients, script, readFileSync(SCALE_MODEL));
    await putJson(deps.clients, { bucket, key: `${folder}${FIT_SPEC_OBJECT}` }, {
      params: { workerNum: 1, trainScripts: [`s3://${bucket}/${script.key}`], trainEntry: "train", trainSelectedCols: ["x", "y"], batchSize: 8, modelId, trainHyperParams: { epochs: 2 } },
      schema: [{ name: "x", dtype: "FLOAT32", shape: "scalar" }, { name: "y", dtype: "FLOAT32", shape: "scalar" }],
    });
    const data = { bucket, key: `${folder}day 1.jsonl` };
    const rows = Array.from({ length: 64 }, (_, i) => JSON.stringify({ x: i / 64, y: (2 * i) / 64 })).join("\n");

    // Act: the object arrives (moto notifies the trigger queue), then the same event again
    await putObject(deps.clients, data, rows);
    const jobId = fitJobId(bucket, data.key, (await headObject(deps.clients, data))!.etag);
    const triggersUrl = (await deps.clients.sqs.send(new GetQueueUrlCommand({ QueueName: RUNTIME_QUEUES.fitTriggers }))).QueueUrl!;
    const duplicate = { Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: { name: bucket }, object: { key: encodeURIComponent(data.key).replace(/%20/g, "+") } } }] };
    await deps.clients.sqs.send(new SendMessageCommand({ QueueUrl: triggersUrl, MessageBody: JSON.stringify(duplicate) }));
    let state: string | undefined;
    for (const deadline = Date.now() + 150_000; Date.now() < deadline && state !== "SUCCEEDED" && state !== "FAILED"; await new Promise((r) => setTimeout(r, 500))) {
      state = (await deps.registry.getJob(jobId))?.state;
    }
    await new Promise((r) => setTimeout(r, 1_000)); // let a second start, if any, show itself

    // Assert
    assert.equal(state, "SUCCEEDED", lines.join("\n"));
    assert.equal(lines.filter((l) => l.includes(`started ${jobId}`)).length, 1, lines.join("\n"));
    assert.equal(lines.filter((l) => l.includes(`duplicate ${jobId}`)).length, 1, lines.join("\n"));
    const versions = (await listKeys(deps.clients, { bucket, key: modelKeys.versions(modelId) })).filter((o) => o.key.endsWith("/metadata.json"));
    assert.equal(versions.length, 1, "one job, one version");
    assert.equal((await getJson<{ jobId: string }>(deps.clients, { bucket, key: versions[0]!.key }))?.value.jobId, jobId);
  });
});
