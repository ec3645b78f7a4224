/**
 * The launcher a deployed coordinator uses, chosen by `SERVERLESS_TF_LAUNCHER` and checked once
 * at cold start: `process` starts workers as local processes (a coordinator run on a machine
 * with the project virtualenv); `ecs` starts them as ECS Fargate tasks (`SERVERLESS_TF_ECS_*`, set by the stack).
 */
import { ConfigError } from "../errors.ts";
import { EcsLauncher, ecsLauncherConfigFromEnv } from "./ecs-launcher.ts";
import type { WorkerLauncher } from "./launcher.ts";
import { ProcessLauncher } from "./process-launcher.ts";

export const LAUNCHERS = ["process", "ecs"] as const;
export type LauncherKind = (typeof LAUNCHERS)[number];

export function launcherKindFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): LauncherKind {
  const kind = env.SERVERLESS_TF_LAUNCHER;
  if (!(LAUNCHERS as readonly (string | undefined)[]).includes(kind)) throw new ConfigError("SERVERLESS_TF_LAUNCHER", kind, `one of ${LAUNCHERS.join(", ")}`);
  return kind as LauncherKind;
}

/**
 * @throws ConfigError when `SERVERLESS_TF_LAUNCHER` is missing or unknown, or (ecs) a `SERVERLESS_TF_ECS_*` setting is missing.
 * @example
 * const launcher = launcherFromEnv(depsFromEnv().config); // SERVERLESS_TF_LAUNCHER=process
 */
export function launcherFromEnv(config: { readonly tableName: string; readonly bucket: string }, env: Readonly<Record<string, string | undefined>> = process.env): WorkerLauncher {
  const kind = launcherKindFromEnv(env);
  switch (kind) {
    case "process":
      // Workers inherit this process's environment (endpoint, region, credentials); the table
      // and bucket are passed as resolved, defaults included.
      return new ProcessLauncher({ env: { SERVERLESS_TF_TABLE: config.tableName, SERVERLESS_TF_BUCKET: config.bucket } });
    case "ecs":
      return new EcsLauncher(ecsLauncherConfigFromEnv(config, env));
  }
}
