/**
 * The construct's props: their defaults, and the error each kind of wrong value gets at
 * construction, naming the prop, quoting the value and saying what is allowed.
 */
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { App, CfnOutput, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as s3 from "aws-cdk-lib/aws-s3";
import { propsFromContext } from "../../infra/app.ts";
import { packageRoot } from "../../infra/code.ts";
import { resolveProps } from "../../infra/props.ts";
import { MissingFunctionBundleError, MissingImageSourceError, MissingLayerError, ServerlessTf, type ServerlessTfProps } from "../../infra/serverless-tf.ts";
import { ConfigError } from "../../src/errors.ts";
import { FUNCTIONS, STACK_OUTPUTS } from "../../src/resources/definitions.ts";

const scratch = mkdtempSync(join(tmpdir(), "stf-props-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Builds the construct in a user's stack; the props are checked before any resource is made. */
function construct(props: ServerlessTfProps): ServerlessTf {
  return new ServerlessTf(new Stack(new App(), "User"), "Tf", props);
}

/** Asserts that `props` fail with a ConfigError for `setting` that quotes `received` and says `expected`. */
function refuses(props: ServerlessTfProps, setting: string, received: unknown, expected: RegExp): void {
  assert.throws(
    () => construct(props),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `a ConfigError, got ${String(e)}`);
      assert.equal(e.setting, setting);
      assert.deepEqual(e.received, received);
      assert.match(e.message, expected);
      assert.ok(e.message.includes(`Received: ${JSON.stringify(received)}`), e.message);
      return true;
    },
  );
}

describe("defaults", () => {
  it("fills in the local runtime's prefix, FUNCTIONS' sizes, a 2 vCPU / 8 GiB worker, RETAIN, batches of 10 with no window, and this package's code", () => {
    // Act
    const resolved = resolveProps({});
    // Assert
    assert.equal(resolved.prefix, "serverless-tf");
    assert.deepEqual(resolved.worker, { cpu: 2048, memoryMiB: 8192, capacity: "fargate" });
    assert.equal(resolved.gpuWorkers, null, "no GPU instances unless asked for");
    assert.deepEqual(resolved.sizing.inference, { memoryMb: FUNCTIONS.inference.memoryMb, timeoutSeconds: FUNCTIONS.inference.timeoutSeconds, reservedConcurrency: FUNCTIONS.inference.reservedConcurrency });
    assert.equal(resolved.removalPolicy, RemovalPolicy.RETAIN);
    assert.deepEqual([resolved.servedModels, resolved.dataBucketNames], [[], []]);
    assert.deepEqual(resolved.inference, { batchSize: 10, maxBatchingWindowSeconds: 0 });
    assert.equal(resolved.functionsDir, join(packageRoot(), "dist", "functions"));
    assert.equal(resolved.sourceDir, packageRoot());
  });

  it("takes fargate-spot as the workers' default capacity, and names the prop for anything else", () => {
    assert.equal(resolveProps({ workerCapacity: "fargate-spot" }).worker.capacity, "fargate-spot");
    assert.throws(() => resolveProps({ workerCapacity: "spot" as never }), (e: unknown) => e instanceof ConfigError && e.setting === "props.workerCapacity");
  });

  it("fills in GPU workers on a g4dn.xlarge, takes gpu as the default capacity only with them, and names the GPU prop that is wrong", () => {
    assert.deepEqual(resolveProps({ gpuWorkers: {} }).gpuWorkers, { instanceType: "g4dn.xlarge", maxInstances: 2, gpusPerWorker: 1, cpu: 3072, memoryMiB: 12288 });
    assert.equal(resolveProps({ gpuWorkers: { instanceType: "p4d.24xlarge", gpusPerWorker: 8 }, workerCapacity: "gpu" }).worker.capacity, "gpu");
    const refused = (props: Parameters<typeof resolveProps>[0], setting: string) =>
      assert.throws(() => resolveProps(props), (e: unknown) => e instanceof ConfigError && e.setting === setting, setting);
    refused({ workerCapacity: "gpu" }, "props.workerCapacity");
    refused({ gpuWorkers: { instanceType: "m5.xlarge" } }, "props.gpuWorkers.instanceType");
    refused({ gpuWorkers: { maxInstances: 0 } }, "props.gpuWorkers.maxInstances");
    refused({ gpuWorkers: { gpusPerWorker: 1.5 } }, "props.gpuWorkers.gpusPerWorker");
  });

  it("gives a worker whose CPU alone is set the memory nearest 8 GiB that Fargate allows for it", () => {
    assert.equal(resolveProps({ workerCpu: 512 }).worker.memoryMiB, 4096);
    assert.equal(resolveProps({ workerCpu: 4096 }).worker.memoryMiB, 8192);
    assert.equal(resolveProps({ workerCpu: 8192 }).worker.memoryMiB, 16384);
  });

  it("accepts the edges of every range and a bucket name that is a token of the user's stack", () => {
    const stack = new Stack(new App(), "User");
    const bucket = new s3.Bucket(stack, "Data");
    const resolved = resolveProps({
      prefix: "ab",
      dataBucketNames: [bucket.bucketName, "a.b-c"],
      workerCpu: 16384,
      workerMemoryMiB: 122880,
      sizing: { coordinator: { memoryMb: 128, timeoutSeconds: 1, reservedConcurrency: 1 }, "shard-feed": { memoryMb: 10240, timeoutSeconds: 900 } },
      inferenceBatchSize: 10000,
      inferenceMaxBatchingWindowSeconds: 300,
      servedModels: ["a", "x".repeat(63)],
    });
    assert.deepEqual(resolved.inference, { batchSize: 10000, maxBatchingWindowSeconds: 300 });
    assert.deepEqual(resolved.sizing.coordinator, { memoryMb: 128, timeoutSeconds: 1, reservedConcurrency: 1 });
  });
});

describe("CDK context", () => {
  it("reads servedModels as comma-separated ids, each with :signature for signature mode", () => {
    // Act
    const props = propsFromContext(new App({ context: { servedModels: "digits, churn:signature,iris:script" } }));
    // Assert
    assert.deepEqual(props.servedModels, ["digits", { modelId: "churn", servingMode: "signature" }, { modelId: "iris", servingMode: "script" }]);
    assert.deepEqual(resolveProps(props).servedModels.map((m) => m.servingMode), ["script", "signature", "script"]);
  });

  it("adds GPU workers when gpuInstanceType is given, with gpuMaxInstances, and takes workerCapacity", () => {
    const props = propsFromContext(new App({ context: { gpuInstanceType: "g5.xlarge", gpuMaxInstances: "6", workerCapacity: "gpu" } }));
    const resolved = resolveProps(props);
    assert.deepEqual([resolved.gpuWorkers?.instanceType, resolved.gpuWorkers?.maxInstances, resolved.worker.capacity], ["g5.xlarge", 6, "gpu"]);
    assert.equal(resolveProps(propsFromContext(new App({ context: { gpuMaxInstances: "6" } }))).gpuWorkers, null, "no instance type, no GPU workers");
  });
});

describe("stack outputs", () => {
  it("leaves the output keys to the first ServerlessTf of a stack when the second says stackOutputs: false", () => {
    // Arrange
    const stack = new Stack(new App(), "User");
    // Act
    new ServerlessTf(stack, "Tf", {});
    new ServerlessTf(stack, "Other", { prefix: "other", stackOutputs: false });
    // Assert
    const outputs = stack.node.findAll().filter((c): c is CfnOutput => c instanceof CfnOutput);
    assert.deepEqual(new Set(outputs.map((o) => o.node.path.split("/")[1])), new Set(["Tf"]));
    assert.ok(outputs.some((o) => stack.resolve(o.logicalId) === STACK_OUTPUTS.bucketName), "under the key itself, not a path-derived id");
  });
});

describe("refused props", () => {
  it("prefix: the pattern the table and queue names are built from", () => {
    refuses({ prefix: "Team_A" }, "props.prefix", "Team_A", /\^\[a-z0-9\]\[a-z0-9-\]\{1,30\}\$/);
    refuses({ prefix: "a".repeat(32) }, "props.prefix", "a".repeat(32), /matching/);
  });

  it("dataBucketNames: S3 bucket names", () => {
    refuses({ dataBucketNames: ["ok-bucket", "My_Bucket"] }, "props.dataBucketNames[1]", "My_Bucket", /an S3 bucket name/);
  });

  it("workerCpu and workerMemoryMiB: a task size Fargate offers", () => {
    refuses({ workerCpu: 3000 }, "props.workerCpu", 3000, /one of 256, 512, 1024, 2048, 4096, 8192, 16384/);
    refuses({ workerCpu: 1024, workerMemoryMiB: 16384 }, "props.workerMemoryMiB", 16384, /2048 to 8192 in steps of 1024 with workerCpu 1024/);
    refuses({ workerCpu: 8192, workerMemoryMiB: 18432 }, "props.workerMemoryMiB", 18432, /16384 to 61440 in steps of 4096/);
  });

  it("sizing: Lambda's memory and timeout ranges, a reserved concurrency of at least 1, known functions only", () => {
    refuses({ sizing: { inference: { memoryMb: 64 } } }, "props.sizing.inference.memoryMb", 64, /an integer from 128 to 10240/);
    refuses({ sizing: { "shard-feed": { timeoutSeconds: 901 } } }, "props.sizing.shard-feed.timeoutSeconds", 901, /an integer from 1 to 900/);
    refuses({ sizing: { checkpoint: { reservedConcurrency: 0 } } }, "props.sizing.checkpoint.reservedConcurrency", 0, /an integer of at least 1/);
    refuses({ sizing: { coordinator: { timeoutSeconds: 1.5 } } }, "props.sizing.coordinator.timeoutSeconds", 1.5, /an integer/);
    refuses({ sizing: { trainer: { memoryMb: 512 } } as ServerlessTfProps["sizing"] }, "props.sizing", "trainer", /keyed by function: coordinator, shard-feed, checkpoint, inference, signature-inference, job-watch, stream-feed/);
  });

  it("removalPolicy: RETAIN or DESTROY", () => {
    refuses({ removalPolicy: RemovalPolicy.SNAPSHOT }, "props.removalPolicy", "snapshot", /RemovalPolicy\.RETAIN or RemovalPolicy\.DESTROY/);
  });

  it("servedModels: model ids, or a model id with its serving mode, each model once", () => {
    refuses({ servedModels: ["digits", "Digits"] }, "props.servedModels[1]", "Digits", /a model id matching/);
    refuses({ servedModels: ["digits", "churn", "digits"] }, "props.servedModels[2]", "digits", /not listed before/);
    refuses({ servedModels: ["digits", { modelId: "digits", servingMode: "signature" }] }, "props.servedModels[1]", { modelId: "digits", servingMode: "signature" }, /not listed before/);
    refuses({ servedModels: [{ modelId: "churn", servingMode: "onnx" as "signature" }] }, "props.servedModels[0].servingMode", "onnx", /"script" or "signature"/);
    refuses({ servedModels: [{ modelId: "Churn", servingMode: "signature" }] }, "props.servedModels[0].modelId", "Churn", /a model id matching/);
    refuses({ servedModels: [{ modelId: "churn" } as { modelId: string; servingMode: "signature" }] }, "props.servedModels[0].servingMode", undefined, /"script" or "signature"/);
    refuses({ servedModels: [{ modelId: "churn", servingMode: "signature", mode: "x" } as { modelId: string; servingMode: "signature" }] }, "props.servedModels[0]", { modelId: "churn", servingMode: "signature", mode: "x" }, /no other key \(got "mode"\)/);
    refuses({ servedModels: [42 as unknown as string] }, "props.servedModels[0]", 42, /or \{ modelId, servingMode: "script" \| "signature" \}/);
    refuses({ servedModels: "digits" as unknown as string[] }, "props.servedModels", "digits", /an array/);
  });

  it("servedModels: a bare id is served in script mode", () => {
    const resolved = resolveProps({ servedModels: ["digits", { modelId: "churn", servingMode: "signature" }, { modelId: "iris", servingMode: "script" }] });
    assert.deepEqual(resolved.servedModels, [
      { modelId: "digits", servingMode: "script" },
      { modelId: "churn", servingMode: "signature" },
      { modelId: "iris", servingMode: "script" },
    ]);
  });

  it("inferenceBatchSize: 1 to 10000", () => {
    refuses({ inferenceBatchSize: 0 }, "props.inferenceBatchSize", 0, /an integer from 1 to 10000/);
    refuses({ inferenceBatchSize: 10001, inferenceMaxBatchingWindowSeconds: 1 }, "props.inferenceBatchSize", 10001, /an integer from 1 to 10000/);
  });

  it("inferenceMaxBatchingWindowSeconds: 0 to 300, and at least 1 for batches above 10 (Lambda's rule)", () => {
    refuses({ inferenceMaxBatchingWindowSeconds: 301 }, "props.inferenceMaxBatchingWindowSeconds", 301, /an integer from 0 to 300/);
    refuses({ inferenceBatchSize: 11 }, "props.inferenceMaxBatchingWindowSeconds", 0, /1 to 300 with inferenceBatchSize 11/);
    assert.deepEqual(resolveProps({ inferenceBatchSize: 11, inferenceMaxBatchingWindowSeconds: 1 }).inference, { batchSize: 11, maxBatchingWindowSeconds: 1 });
  });

  it("stackOutputs: true or false", () => {
    refuses({ stackOutputs: "no" as unknown as boolean }, "props.stackOutputs", "no", /true or false/);
  });

  it("functionsDir: a folder with every zip function's bundle, else an error that says to run npm run build", () => {
    // Arrange: bundles for all zip functions but checkpoint
    const functionsDir = join(scratch, "functions");
    for (const name of ["coordinator", "shard-feed", "job-watch", "stream-feed"]) {
      mkdirSync(join(functionsDir, name), { recursive: true });
      writeFileSync(join(functionsDir, name, "index.mjs"), "export const handler = async () => undefined;\n");
    }
    // Act / Assert
    assert.throws(
      () => construct({ functionsDir }),
      (e: unknown) => e instanceof MissingFunctionBundleError && e.functionName === "checkpoint" && e.bundle === join(functionsDir, "checkpoint", "index.mjs") && e.message.includes("npm run build"),
    );
  });

  it("sourceDir: a tree with the two images' Dockerfiles and the handler bundle the inference image copies", () => {
    // Arrange: a tree with no image sources
    const installed = join(scratch, "installed");
    mkdirSync(join(installed, "python"), { recursive: true });
    // Act / Assert
    assert.throws(() => construct({ sourceDir: installed }), (e: unknown) => e instanceof MissingImageSourceError && e.image === "worker" && e.missing === "python/Dockerfile" && e.message.includes("set sourceDir"));
    writeFileSync(join(installed, "python", "Dockerfile"), "FROM scratch\n");
    mkdirSync(join(installed, "functions", "inference"), { recursive: true });
    writeFileSync(join(installed, "functions", "inference", "Dockerfile"), "FROM scratch\n");
    assert.throws(() => construct({ sourceDir: installed }), (e: unknown) => e instanceof MissingImageSourceError && e.image === "inference" && e.missing === "dist/functions/inference/index.mjs");
  });

  it("sourceDir: a tree with the layers npm run build assembles, else an error that says to run it", () => {
    // Arrange: the images' sources, no dist/layers
    const unbuilt = join(scratch, "unbuilt");
    for (const file of ["python/Dockerfile", "functions/inference/Dockerfile", "dist/functions/inference/index.mjs"]) {
      mkdirSync(join(unbuilt, file, ".."), { recursive: true });
      writeFileSync(join(unbuilt, file), "\n");
    }
    // Act / Assert
    assert.throws(
      () => construct({ sourceDir: unbuilt }),
      (e: unknown) => e instanceof MissingLayerError && e.layer === "onnxruntime" && e.dir === join(unbuilt, "dist", "layers", "onnxruntime") && e.message.includes("npm run build"),
    );
  });
});
