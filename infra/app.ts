/**
 * The CDK app: `cd infra && npx cdk deploy` (see infra/README.md for the context values).
 * Synth is offline: the functions are bundled by the local esbuild and the worker image is only
 * staged (cdk deploy builds and pushes it).
 */
import { fileURLToPath } from "node:url";
import { App, RemovalPolicy, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { acknowledgeCdkInternals } from "./nag.ts";
import { ServerlessTfStack, type ServerlessTfStackProps } from "./stack.ts";

/** The repository root, one level above this file. */
export const projectRoot = fileURLToPath(new URL("..", import.meta.url));

/** Stack props from CDK context (`-c key=value` or cdk.json), each checked and named on failure. */
export function propsFromContext(app: App): ServerlessTfStackProps {
  const str = (key: string): string | undefined => {
    const v: unknown = app.node.tryGetContext(key);
    return v === undefined || v === null || v === "" ? undefined : String(v);
  };
  const int = (key: string): number | undefined => {
    const v = str(key);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`context ${key} must be a positive integer. Received: ${JSON.stringify(v)}`);
    return n;
  };
  const prefix = str("prefix");
  if (prefix !== undefined && !/^[a-z0-9][a-z0-9-]{1,30}$/.test(prefix)) throw new Error(`context prefix must match ^[a-z0-9][a-z0-9-]{1,30}$. Received: ${JSON.stringify(prefix)}`);
  const dataBuckets = str("dataBuckets")?.split(",").map((s) => s.trim()).filter(Boolean);
  const workerCpu = int("workerCpu");
  const workerMemoryMiB = int("workerMemoryMiB");
  return {
    projectRoot,
    ...(prefix ? { prefix } : {}),
    ...(dataBuckets?.length ? { dataBucketNames: dataBuckets } : {}),
    ...(workerCpu ? { workerCpu } : {}),
    ...(workerMemoryMiB ? { workerMemoryMiB } : {}),
    ...(str("destroyData") === "true" ? { removalPolicy: RemovalPolicy.DESTROY } : {}),
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  };
}

/** Builds the app with cdk-nag's AwsSolutions pack applied (its findings fail the synth). */
export function buildApp(app: App = new App(), props: ServerlessTfStackProps = propsFromContext(app)): { app: App; stack: ServerlessTfStack } {
  const stack = new ServerlessTfStack(app, String(app.node.tryGetContext("stackName") ?? "ServerlessTf"), props);
  acknowledgeCdkInternals(stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }));
  return { app, stack };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildApp().app.synth();
}
