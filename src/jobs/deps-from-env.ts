/** Dependencies of a stage built once per container (Lambda reuses them across warm invocations). */
import { createAwsClients, awsSettingsFromEnv } from "../aws/clients.ts";
import type { JobDeps } from "./deps.ts";
import { Registry } from "../registry/registry.ts";
import { stageConfigFromEnv, type StageConfig } from "./settings.ts";

export interface StageDeps extends JobDeps {
  readonly config: StageConfig;
}

let cached: StageDeps | undefined;

export function stageDeps(env: Readonly<Record<string, string | undefined>> = process.env): StageDeps {
  if (!cached) {
    const config = stageConfigFromEnv(env);
    const clients = createAwsClients(awsSettingsFromEnv(env));
    cached = { config, clients, registry: new Registry(clients, config.tableName) };
  }
  return cached;
}

/** Forgets the cached dependencies (the local runtime calls it when it changes the environment). */
export function resetStageDeps(): void {
  cached = undefined;
}
