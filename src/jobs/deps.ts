/**
 * The dependencies every core function takes as a parameter, so the same core runs in Lambda,
 * in the local runtime and in tests: `Deps` (the AWS clients and the registry over them) for
 * cores that need nothing else, `FunctionDeps` for the cores of functions that also read the
 * stack's settings (bucket, table, queue URLs).
 */
import { createAwsClients, awsSettingsFromEnv, type AwsClients, type AwsSettings } from "../aws/clients.ts";
import { Registry } from "../registry/registry.ts";
import { functionConfigFromEnv, type FunctionConfig } from "./settings.ts";

export interface Deps {
  readonly clients: AwsClients;
  readonly registry: Registry;
}

export interface FunctionDeps extends Deps {
  readonly config: FunctionConfig;
}

/**
 * Builds a function's dependencies from explicit settings (the local runtime, tests).
 *
 * @example
 * const deps = createDeps({ tableName: "t", bucket: "b", shardFeedQueueUrl: undefined, jobWatchQueueUrl: undefined }, { region: "us-east-1", endpoint: "http://127.0.0.1:4566" });
 */
export function createDeps(config: FunctionConfig, aws: AwsSettings): FunctionDeps {
  const clients = createAwsClients(aws);
  return { config, clients, registry: new Registry(clients, config.tableName) };
}

/** A function's dependencies from its environment, checked once at its start (a Lambda cold start). */
export function depsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): FunctionDeps {
  return createDeps(functionConfigFromEnv(env), awsSettingsFromEnv(env));
}
