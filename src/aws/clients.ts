/**
 * The one place that builds AWS SDK v3 clients. Everything else receives an
 * {@link AwsClients} value, so the same core code runs in Lambda, in the local
 * runtime and in tests against the emulator.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { ConfigError } from "../errors.ts";
import { faultInjection, faultSettingsFromEnv, type FaultSettings } from "./faults.ts";

export interface AwsSettings {
  readonly region: string;
  /** Per-service endpoint; undefined means the real AWS endpoint. */
  readonly endpoints: Readonly<Record<"s3" | "sqs" | "dynamodb", string | undefined>>;
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Injected faults for reliability tests; undefined in normal use. */
  readonly faults?: FaultSettings;
}

export interface AwsClients {
  readonly settings: AwsSettings;
  readonly s3: S3Client;
  readonly sqs: SQSClient;
  readonly dynamodb: DynamoDBClient;
}

function checkedUrl(name: string, value: string | undefined): string | undefined {
  if (!value) return undefined;
  let protocol = "";
  try {
    protocol = new URL(value).protocol;
  } catch {
    // falls through to the error below
  }
  if (protocol !== "http:" && protocol !== "https:") throw new ConfigError(name, value, "an http(s) URL such as http://127.0.0.1:4566");
  return value;
}

/**
 * Reads `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_S3` / `_SQS` / `_DYNAMODB`), `AWS_REGION`
 * and credentials. With an endpoint and no credentials, the emulator pair `test`/`test` is used.
 *
 * @example
 * const clients = createAwsClients(awsSettingsFromEnv({ AWS_ENDPOINT_URL: "http://127.0.0.1:4566" }));
 */
export function awsSettingsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): AwsSettings {
  const fallback = checkedUrl("AWS_ENDPOINT_URL", env.AWS_ENDPOINT_URL);
  const endpoints = {
    s3: checkedUrl("AWS_ENDPOINT_URL_S3", env.AWS_ENDPOINT_URL_S3) ?? fallback,
    sqs: checkedUrl("AWS_ENDPOINT_URL_SQS", env.AWS_ENDPOINT_URL_SQS) ?? fallback,
    dynamodb: checkedUrl("AWS_ENDPOINT_URL_DYNAMODB", env.AWS_ENDPOINT_URL_DYNAMODB) ?? fallback,
  };
  const usesEmulator = Object.values(endpoints).some(Boolean);
  const accessKeyId = env.AWS_ACCESS_KEY_ID ?? (usesEmulator ? "test" : undefined);
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY ?? (usesEmulator ? "test" : undefined);
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1";
  const faults = faultSettingsFromEnv(env);
  return {
    region,
    endpoints,
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey } } : {}),
    ...(faults ? { faults } : {}),
  };
}

export function createAwsClients(settings: AwsSettings = awsSettingsFromEnv()): AwsClients {
  const common = { region: settings.region, maxAttempts: 8, ...(settings.credentials ? { credentials: settings.credentials } : {}) };
  const clients = {
    settings,
    s3: new S3Client({ ...common, endpoint: settings.endpoints.s3, forcePathStyle: settings.endpoints.s3 !== undefined }),
    sqs: new SQSClient({ ...common, endpoint: settings.endpoints.sqs }),
    dynamodb: new DynamoDBClient({ ...common, endpoint: settings.endpoints.dynamodb }),
  };
  if (settings.faults) {
    const plugin = faultInjection(settings.faults);
    clients.s3.middlewareStack.use(plugin);
    clients.sqs.middlewareStack.use(plugin);
    clients.dynamodb.middlewareStack.use(plugin);
  }
  return clients;
}

export function destroyAwsClients(clients: AwsClients): void {
  clients.s3.destroy();
  clients.sqs.destroy();
  clients.dynamodb.destroy();
}
