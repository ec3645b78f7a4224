import type { AwsClients } from "../aws/clients.ts";
import type { Registry } from "../registry/registry.ts";

/** What the core functions of every stage need; Lambda handlers and the local runtime build one. */
export interface JobDeps {
  readonly clients: AwsClients;
  readonly registry: Registry;
}
