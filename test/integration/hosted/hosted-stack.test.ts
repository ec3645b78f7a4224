/**
 * The stack as deployed, hosted locally (src/hosted/hosted-stack.ts) and driven through the
 * deployed-stack runtime exactly as a program drives a stack on AWS: every function runs from the
 * bundle its template points at, configured as the template configures it; workers are started
 * by the coordinator's and the job-watch function's RunTask calls. One hosted stack for the file,
 * under its own prefix so its runtime queues are not the local runtime's.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CreateQueueCommand, DeleteQueueCommand } from "@aws-sdk/client-sqs";
import { GetRoleCommand, IAMClient, NoSuchEntityException } from "@aws-sdk/client-iam";
import { InferenceClient, JobRejectedError, StackRuntime, StreamingTFModel, Table, TFEstimator, schemaOf, type Row } from "../../../src/index.ts";
import { queueArn } from "../../../src/jobs/queues.ts";
import { produceScaleRows, scaleStreamEstimator } from "../../helpers/streaming.ts";
import { DIGITS_SCHEMA as schema, demoFile, prepareDigits } from "../../../demo/digits-data.ts";
import { OPTIONAL_SETTINGS } from "../../../src/jobs/settings.ts";
import { hostedStackRuntime, type HostedStack } from "../../../src/hosted/hosted-stack.ts";
import { resolveValue, templateFunctions, templateMappings } from "../../../src/hosted/template.ts";
import { projectRoot } from "../../../src/workers/paths.ts";
import { JOB_ROLE_POLICY, jobRoleName } from "../../../src/workers/job-role.ts";
import { WORKER_STOP_TIMEOUT_SECONDS } from "../../../src/resources/definitions.ts";

let runtime: StackRuntime;
let stack: HostedStack;
let trainRows: readonly Row[];
let testRows: readonly Row[];
const logged: string[] = [];

before(async () => {
  ({ trainRows, testRows } = prepareDigits(mkdtempSync(join(tmpdir(), "stf-hosted-digits-"))));
  ({ runtime, stack } = await hostedStackRuntime({ context: { prefix: "serverless-tf-hosted" }, log: (line) => void logged.push(line) }));
});

after(async () => {
  await runtime?.close();
});

function estimator(): TFEstimator {
  return new TFEstimator()
    .withRuntime(runtime)
    .setWorkerNum(2)
    .setTrainScripts([demoFile("digits_model.py")])
    .setTrainEntry("train")
    .setTrainHyperParams({ epochs: 25, hidden: 64, learning_rate: 0.005 })
    .setTrainSelectedCols(["pixels", "label"])
    .setBatchSize(32)
    .setRemainder("pad")
    .setCheckpointEverySteps(20)
    .setInferenceScripts([demoFile("digits_model.py")])
    .setInferenceEntry("predict")
    .setInferenceSelectedCols(["pixels"])
    .setInferenceOutputCols(["digit", "score"])
    .setInferenceOutputTypes(["INT64", "FLOAT32"])
    .setModelId("hosted-digits");
}

describe("the hosted stack", () => {
  it("runs every function of the template from its bundle, with the template's settings and mappings", () => {
    const { template, deployed } = stack;
    const functions = templateFunctions(template);
    assert.deepEqual(functions.length, 7, "coordinator, shard-feed, checkpoint, inference, signature-inference, job-watch, stream-feed");
    const built = readdirSync(join(projectRoot, "dist", "functions")).map((name) => readFileSync(join(projectRoot, "dist", "functions", name, "index.mjs")));
    for (const fn of functions) {
      const hosted = stack.functions.get(fn.logicalId)!;
      assert.equal(hosted.config.timeoutSeconds, fn.timeoutSeconds, `${fn.logicalId} timeout`);
      assert.equal(hosted.config.memoryMb, fn.memoryMb, `${fn.logicalId} memory`);
      assert.equal(hosted.config.reservedConcurrency, fn.reservedConcurrency, `${fn.logicalId} reserved concurrency`);
      for (const [key, value] of Object.entries(fn.environment)) {
        assert.equal(hosted.config.environment[key], String(resolveValue(value, deployed.physical, deployed.pseudo, key)), `${fn.logicalId} ${key}`);
      }
      // The zip's files are the build's: the asset directory holds one of dist/functions/*/index.mjs.
      const code = readFileSync(hosted.config.bundle);
      assert.ok(built.some((b) => b.equals(code)), `${fn.logicalId} runs ${hosted.config.bundle}, which is no bundle of dist/functions`);
      // A zip resolves modules from its code and layers only (test/integration/hosted/function-host.test.ts).
      assert.equal(hosted.config.layers?.length, fn.packageType === "Zip" ? fn.layers.length : undefined, `${fn.logicalId} layers`);
    }
    const running = stack.listMappings({});
    for (const m of templateMappings(template)) {
      const fn = stack.functions.get(m.functionRef)!;
      const arn = String(resolveValue(m.eventSourceArn, deployed.physical, deployed.pseudo, m.logicalId));
      const found = running.find((r) => r.EventSourceArn === arn && r.FunctionArn === fn.config.arn);
      assert.ok(found, `mapping ${m.logicalId} is running`);
      assert.equal(found.BatchSize, m.batchSize);
      assert.equal(found.MaximumBatchingWindowInSeconds, m.maxBatchingWindowSeconds);
      assert.equal(found.FunctionResponseTypes.includes("ReportBatchItemFailures"), m.reportBatchItemFailures);
    }
    for (const type of ["AWS::IAM::Policy", "AWS::EC2::VPCEndpoint"]) assert.ok(type in stack.notEmulated, `${type} is listed as not emulated`);
  });

  it("refuses a start the coordinator rejects with its typed reason", async () => {
    await assert.rejects(
      // Only the coordinator can tell: the prefix is empty in the stack's bucket.
      () => estimator().fit(Table.fromS3(`s3://${runtime.bucket}/no-such-table/`, schema)),
      (e: unknown) => e instanceof JobRejectedError && e.type === "ConfigError" && e.message.includes("no-such-table"),
    );
  });

  it("fits on 2 RunTask workers, restarts a killed one through job-watch (attempt 2) from its checkpoint, transforms and serves the model", async () => {
    let jobId = "";
    let killed: string | undefined;
    const model = await estimator().fit(Table.fromRows(schema, trainRows), {
      onStarted: (id) => (jobId = id),
      onProgress: (p) => {
        if (killed || p.member.index !== 0 || Number(p.epoch) < 4) return;
        void runtime.deps.registry.latestCheckpoint(jobId).then((checkpoint) => {
          const task = stack.tasks.list().find((t) => t.lastStatus === "RUNNING" && t.startedBy === `stf-${jobId}` && t.command.join(" ").includes("--index 1"));
          if (!checkpoint || !task || killed) return;
          killed = task.taskArn;
          task.child.kill("SIGKILL");
        });
      },
    });
    assert.ok(killed, "a worker task was killed mid-fit");
    const fitTasks = stack.tasks.list().filter((t) => t.startedBy === `stf-${jobId}`);
    const attempts = (n: number) => fitTasks.filter((t) => t.command.join(" ").includes(`--attempt ${n}`));
    assert.equal(attempts(0).length, 2, "the coordinator's RunTask started both members");
    assert.equal(attempts(1).length, 2, "job-watch restarted the member set with RunTask as attempt 2");
    assert.ok(logged.some((l) => l.includes("resumed from checkpoint")), "the restarted members resumed from the last checkpoint");
    // StopTask leaves a worker the template's StopTimeout to save its set's checkpoint.
    assert.ok(fitTasks.length > 0 && fitTasks.every((t) => t.stopTimeoutSeconds === WORKER_STOP_TIMEOUT_SECONDS), JSON.stringify(fitTasks.map((t) => t.stopTimeoutSeconds)));
    // Every task ran as the job's own role, whose policy the coordinator made for this job only.
    for (const task of fitTasks) {
      assert.match(task.role?.arn ?? "", new RegExp(`:role/serverless-tf/jobs/[a-z0-9-]+/serverless-tf-hosted-registry/${jobRoleName(jobId)}$`), task.taskArn);
      const policy = JSON.stringify(task.role!.policies[JOB_ROLE_POLICY]);
      assert.ok(policy.includes(`"job#${jobId}"`) && policy.includes(`jobs/${jobId}/`), "the job's partition and prefix");
      assert.ok(!/jobs\/\*|stf-\*/.test(policy), "no wildcard over other jobs");
    }
    // Finishing the job deletes its role (job-watch, right after the final state the fit returned on).
    const iam = new IAMClient({ region: runtime.deps.clients.settings.region, endpoint: stack.awsEndpoint, credentials: runtime.deps.clients.settings.credentials! });
    const roleGone = async () => iam.send(new GetRoleCommand({ RoleName: jobRoleName(jobId) })).then(() => false, (e: unknown) => e instanceof NoSuchEntityException);
    for (let i = 0; i < 100 && !(await roleGone()); i++) await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(await roleGone(), "the job's role is deleted once the job ends");
    iam.destroy();

    const scored = await model.transform(Table.fromRows(schema, testRows));
    const correct = scored.rows.filter((r) => BigInt(r.digit as bigint) === BigInt(r.label as number)).length;
    assert.ok(correct / scored.rows.length >= 0.95, `held-out accuracy ${correct}/${scored.rows.length} under the demo's bar 0.95`);

    const served = await runtime.serveModel("hosted-digits");
    try {
      const client = new InferenceClient(runtime.deps.clients, served.inputQueueUrl, served.outputQueueUrl);
      const sample = testRows.slice(0, 20);
      await client.sendRows(sample.map((row, i) => ({ id: `row-${i}`, row: { pixels: row.pixels } })));
      const agree = await Promise.all(sample.map(async (_, i) => BigInt((await client.result(`row-${i}`, 180_000)).row.digit as string) === BigInt(scored.rows[i]!.digit as bigint)));
      assert.ok(agree.every(Boolean), "the inference function, configured as the template configures it, serves what transform scored");
    } finally {
      await served.stop();
    }
  });

  it("fits with parameter servers on RunTask tasks (a chief, a ps and 2 workers, each as the job's role) to the demo's held-out accuracy", async () => {
    let jobId = "";
    const model = await estimator().setPsNum(1).setModelId("hosted-ps-digits").setCheckpointEverySteps(50).fit(Table.fromRows(schema, trainRows), { onStarted: (id) => (jobId = id) });
    const tasks = stack.tasks.list().filter((t) => t.startedBy === `stf-${jobId}`);
    const roleOf = (command: readonly string[]) => command[command.indexOf("--role") + 1];
    assert.deepEqual(tasks.map((t) => `${roleOf(t.command)}-${t.command[t.command.indexOf("--index") + 1]}`).sort(), ["chief-0", "ps-0", "worker-0", "worker-1"]);
    assert.ok(tasks.every((t) => t.role?.arn.endsWith(`/${jobRoleName(jobId)}`)), "the chief and the ps run as the job's role too");
    // Each epoch is every worker's steps: 2 workers x ceil(rows per worker / 32) under pad.
    assert.equal(model.metadata.step, 25 * 2 * Math.ceil(Math.ceil(trainRows.length / 2) / 32), "the chief ran every worker's steps in every epoch");
    const scored = await model.transform(Table.fromRows(schema, testRows));
    const correct = scored.rows.filter((r) => BigInt(r.digit as bigint) === BigInt(r.label as number)).length;
    assert.ok(correct / scored.rows.length >= 0.95, `held-out accuracy ${correct}/${scored.rows.length} under the demo's bar 0.95`);
  });

  it("runs a streaming fit: the coordinator maps the source queue to stream-feed, stop() unmaps it and job-watch ends the job", async () => {
    const clients = runtime.deps.clients;
    const sourceUrl = (await clients.sqs.send(new CreateQueueCommand({ QueueName: `stf-stream-hosted-${Date.now().toString(36)}` }))).QueueUrl!;
    const sourceArn = await queueArn(clients, sourceUrl);
    const producer = produceScaleRows(clients, sourceUrl);
    try {
      const model = (await scaleStreamEstimator(runtime, "hosted-stream")
        .fit(Table.fromQueue(sourceUrl, schemaOf({ x: "FLOAT32", y: "FLOAT32" })))) as StreamingTFModel;
      const { jobId } = model.job;
      assert.ok(model.metadata.version, "fit returned at the first published version");
      assert.equal(stack.listMappings({ eventSourceArn: sourceArn }).length, 1, "the coordinator mapped the source queue to the stream-feed function");
      assert.ok(stack.functionOf("stream-feed").coldStarts > 0, "the stream-feed function forwarded rows");
      await producer.stop();
      await model.job.stop();
      assert.equal((await runtime.deps.registry.getJob(jobId))?.state, "SUCCEEDED", "job-watch ended the job");
      assert.equal(stack.listMappings({ eventSourceArn: sourceArn }).length, 0, "stop() deleted the mapping");
      assert.equal((await runtime.deps.registry.streamOf(sourceArn.split(":").pop()!))?.released, true, "the queue is free for the next job");
    } finally {
      await producer.stop();
      await clients.sqs.send(new DeleteQueueCommand({ QueueUrl: sourceUrl })).catch(() => undefined);
    }
  });

  it("ran no function that read a setting its template does not set", () => {
    for (const kind of ["coordinator", "shard-feed", "checkpoint", "inference", "job-watch", "stream-feed"]) {
      const fn = stack.functionOf(kind);
      assert.ok(fn.coldStarts > 0, `${kind} ran (else this check says nothing)`);
      const unexpected = [...fn.unsetReads].filter((name) => !(name in OPTIONAL_SETTINGS));
      assert.deepEqual(unexpected, [], `${kind} read settings its template leaves unset`);
    }
  });
});
