/**
 * The registry table as data, shared by the local runtime, the tests and (later) the CDK stack,
 * plus {@link ensureRegistryTable} that provisions it on the emulator or an account.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  ResourceInUseException,
  ResourceNotFoundException,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import type { AwsClients } from "../aws/clients.ts";
import { ConfigError, ServerlessTfError } from "../errors.ts";
import { sleep } from "./items.ts";

export const DEFAULT_REGISTRY_TABLE = "serverless-tf-registry";

/**
 * The table definition. Its field names and values follow the CDK `TableProps` shape
 * (`AttributeType.STRING` is `"S"`, `BillingMode.PAY_PER_REQUEST` is `"PAY_PER_REQUEST"`),
 * so the stack can spread it into `new Table(...)` after mapping the enums.
 */
export const REGISTRY_TABLE = {
  partitionKey: { name: "pk", type: "S" },
  sortKey: { name: "sk", type: "S" },
  billingMode: "PAY_PER_REQUEST",
  /** Epoch seconds. moto never expires items, so nothing relies on expiry for correctness. */
  timeToLiveAttribute: "expiresAt",
} as const;

const TABLE_NAME = /^[a-zA-Z0-9_.-]{3,255}$/;

/**
 * The registry table name from `SERVERLESS_TF_TABLE`, or {@link DEFAULT_REGISTRY_TABLE}.
 *
 * @example
 * registryTableName({ SERVERLESS_TF_TABLE: "my-registry" }); // "my-registry"
 */
export function registryTableName(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const name = env.SERVERLESS_TF_TABLE || DEFAULT_REGISTRY_TABLE;
  if (!TABLE_NAME.test(name)) throw new ConfigError("SERVERLESS_TF_TABLE", name, "a DynamoDB table name: 3 to 255 of a-z A-Z 0-9 _ . -");
  return name;
}

export class RegistryTableError extends ServerlessTfError {}

/**
 * Creates the registry table if it is missing, waits until it is ACTIVE and enables TTL on
 * `expiresAt`. Idempotent and safe to call concurrently: a lost creation race is not an error.
 *
 * @example
 * await ensureRegistryTable(createAwsClients(), registryTableName());
 */
export async function ensureRegistryTable(clients: AwsClients, name: string = registryTableName(), timeoutMs = 60_000): Promise<void> {
  const ddb = clients.dynamodb;
  const deadline = Date.now() + timeoutMs;
  const status = async (): Promise<string | undefined> => {
    try {
      return (await ddb.send(new DescribeTableCommand({ TableName: name }))).Table?.TableStatus;
    } catch (e) {
      if (e instanceof ResourceNotFoundException) return undefined;
      throw e;
    }
  };

  if ((await status()) === undefined) {
    try {
      await ddb.send(
        new CreateTableCommand({
          TableName: name,
          BillingMode: REGISTRY_TABLE.billingMode,
          AttributeDefinitions: [
            { AttributeName: REGISTRY_TABLE.partitionKey.name, AttributeType: REGISTRY_TABLE.partitionKey.type },
            { AttributeName: REGISTRY_TABLE.sortKey.name, AttributeType: REGISTRY_TABLE.sortKey.type },
          ],
          KeySchema: [
            { AttributeName: REGISTRY_TABLE.partitionKey.name, KeyType: "HASH" },
            { AttributeName: REGISTRY_TABLE.sortKey.name, KeyType: "RANGE" },
          ],
        }),
      );
    } catch (e) {
      // Another caller created it between our describe and our create.
      if (!(e instanceof ResourceInUseException)) throw e;
    }
  }
  for (let current = await status(); current !== "ACTIVE"; current = await status()) {
    if (Date.now() > deadline) throw new RegistryTableError(`table ${name} is ${current ?? "missing"}, not ACTIVE, after ${timeoutMs} ms. Check the table in the DynamoDB console, or delete it and retry.`);
    await sleep(250);
  }

  const ttl = await ddb.send(new DescribeTimeToLiveCommand({ TableName: name }));
  const ttlStatus = ttl.TimeToLiveDescription?.TimeToLiveStatus;
  if (ttlStatus === "ENABLED" || ttlStatus === "ENABLING") return;
  try {
    await ddb.send(new UpdateTimeToLiveCommand({ TableName: name, TimeToLiveSpecification: { AttributeName: REGISTRY_TABLE.timeToLiveAttribute, Enabled: true } }));
  } catch (e) {
    // DynamoDB answers a ValidationException when a concurrent caller enabled TTL first.
    const again = await ddb.send(new DescribeTimeToLiveCommand({ TableName: name }));
    const s = again.TimeToLiveDescription?.TimeToLiveStatus;
    if (s !== "ENABLED" && s !== "ENABLING") throw e;
  }
}
