/**
 * The CDK app: `cd infra && npx cdk deploy` (see infra/README.md for the context values). CDK
 * context becomes the stack's props, which the construct checks; cdk-nag's AwsSolutions pack runs
 * on the synth. Synth is offline: the zip functions are the bundles `npm run build` wrote, and the
 * two images are only staged (cdk deploy builds and pushes them).
 */
import { fileURLToPath } from "node:url";
import { App, RemovalPolicy, Validations } from "aws-cdk-lib";
import { ASSET_RESOURCE_METADATA_ENABLED_CONTEXT } from "aws-cdk-lib/cx-api";
import { AwsSolutionsChecks } from "cdk-nag";
import { ConfigError } from "../src/errors.ts";
import type { GpuWorkers, ServedModel } from "./props.ts";
import type { WorkerCapacity } from "../src/protocol/spec.ts";
import { ServerlessTfStack, type ServerlessTfStackProps } from "./stack.ts";

/** Stack props from CDK context (`-c key=value` or cdk.json); the construct checks each value and names it on failure. */
export function propsFromContext(app: App): ServerlessTfStackProps {
  const str = (key: string): string | undefined => {
    const v: unknown = app.node.tryGetContext(key);
    return v === undefined || v === null || v === "" ? undefined : String(v);
  };
  const int = (key: string): number | undefined => {
    const v = str(key);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new ConfigError(`context ${key}`, v, "a whole number");
    return Number(v);
  };
  const names = (key: string): string[] | undefined => str(key)?.split(",").map((s) => s.trim()).filter(Boolean);
  // `digits,churn:signature`: a bare id is served in script mode; the construct checks the mode.
  const served = (key: string): ServedModel[] | undefined =>
    names(key)?.map((entry) => {
      const [modelId = "", servingMode] = entry.split(":");
      return servingMode === undefined ? modelId : { modelId, servingMode: servingMode as "script" | "signature" };
    });
  const props = {
    prefix: str("prefix"),
    dataBucketNames: names("dataBuckets"),
    servedModels: served("servedModels"),
    workerCpu: int("workerCpu"),
    workerMemoryMiB: int("workerMemoryMiB"),
    workerCapacity: str("workerCapacity") as WorkerCapacity | undefined,
    // GPU workers exist when an instance type is given.
    gpuWorkers: str("gpuInstanceType") ? ({ instanceType: str("gpuInstanceType"), maxInstances: int("gpuMaxInstances") } satisfies GpuWorkers) : undefined,
    inferenceBatchSize: int("inferenceBatchSize"),
    inferenceMaxBatchingWindowSeconds: int("inferenceMaxBatchingWindowSeconds"),
    removalPolicy: str("destroyData") === "true" ? RemovalPolicy.DESTROY : undefined,
  };
  return {
    ...Object.fromEntries(Object.entries(props).filter(([, v]) => v !== undefined)),
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  };
}

/** Builds the app with cdk-nag's AwsSolutions pack applied (its findings fail the synth). */
export function buildApp(app: App = new App(), props: ServerlessTfStackProps = propsFromContext(app)): { app: App; stack: ServerlessTfStack } {
  // `cdk synth` writes each asset's folder into the template (Metadata "aws:asset:path"); an app
  // synthesized in-process (tests, the hosted copy of the stack) does so only when asked.
  if (app.node.tryGetContext(ASSET_RESOURCE_METADATA_ENABLED_CONTEXT) === undefined) app.node.setContext(ASSET_RESOURCE_METADATA_ENABLED_CONTEXT, true);
  const stack = new ServerlessTfStack(app, String(app.node.tryGetContext("stackName") ?? "ServerlessTf"), props);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }));
  return { app, stack };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildApp().app.synth();
}
