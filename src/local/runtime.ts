/**
 * The local runtime, the embedded default: an AWS emulator (started when no endpoint is
 * given), the same resources the stack defines, the real shard-feed and checkpoint handlers
 * invoked in-process by SQS event source mappings, and workers as local processes.
 */
import { BucketAlreadyOwnedByYou, CreateBucketCommand, PutBucketNotificationConfigurationCommand } from "@aws-sdk/client-s3";
import { CreateQueueCommand } from "@aws-sdk/client-sqs";
import { handler as checkpointHandler } from "../../functions/checkpoint/handler.ts";
import { handler as shardFeedHandler } from "../../functions/shard-feed/handler.ts";
import { awsSettingsFromEnv } from "../aws/clients.ts";
import { sendShardFeedRequest } from "../feed/dispatch.ts";
import type { ShardFeedEvent } from "../feed/shard-feed.ts";
import { queueArn } from "../jobs/queues.ts";
import type { JobRuntime } from "../jobs/runtime.ts";
import { ProcessLauncher } from "../launch/process-launcher.ts";
import { ensureRegistryTable } from "../registry/table.ts";
import { stageDeps, resetStageDeps, type StageDeps } from "../stage/deps.ts";
import { EXPORT_MANIFEST } from "../checkpoint/publish.ts";
import { startEmulator, type RunningEmulator } from "./emulator.ts";
import { SqsEventSource } from "./event-source.ts";

export interface LocalRuntimeOptions {
  /** An AWS endpoint to use; default `AWS_ENDPOINT_URL`, else a moto server started here. */
  readonly endpoint?: string;
  /** Where worker log lines go (prefixed with job, role and index); default nowhere. */
  readonly workerLog?: (line: string) => void;
  /** Where stage errors go; default stderr. */
  readonly stageLog?: (line: string) => void;
}

/** Runtime-wide queues: requests for shard-feeds, and S3 notifications for the checkpoint stage. */
export const RUNTIME_QUEUES = { shardFeed: "serverless-tf-shard-feed", events: "serverless-tf-events" } as const;

async function createQueueWithDlq(runtime: { deps: StageDeps }, name: string, visibilityTimeoutSeconds: number): Promise<string> {
  const sqs = runtime.deps.clients.sqs;
  const { QueueUrl: dlq } = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq`, Attributes: { MessageRetentionPeriod: String(14 * 24 * 3600) } }));
  const redrive = JSON.stringify({ deadLetterTargetArn: await queueArn(runtime.deps.clients, dlq!), maxReceiveCount: 5 });
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: { VisibilityTimeout: String(visibilityTimeoutSeconds), RedrivePolicy: redrive } }));
  return QueueUrl!;
}

export class LocalRuntime implements JobRuntime {
  private constructor(
    readonly deps: StageDeps,
    readonly launcher: ProcessLauncher,
    private readonly sources: SqsEventSource[],
    private readonly emulator: RunningEmulator | undefined,
  ) {}

  static async start(options: LocalRuntimeOptions = {}): Promise<LocalRuntime> {
    let emulator: RunningEmulator | undefined;
    const endpoint = options.endpoint ?? process.env.AWS_ENDPOINT_URL ?? (emulator = await startEmulator()).endpoint;
    // The handlers read their configuration from the environment, exactly as in Lambda.
    process.env.AWS_ENDPOINT_URL = endpoint;
    process.env.AWS_REGION ??= "us-east-1";
    resetStageDeps();
    let deps = stageDeps();
    const { clients, config } = deps;
    try {
      await clients.s3.send(new CreateBucketCommand({ Bucket: config.bucket })).catch((e: unknown) => {
        if (!(e instanceof BucketAlreadyOwnedByYou)) throw e;
      });
      await ensureRegistryTable(clients, config.tableName);
      const shardFeedUrl = await createQueueWithDlq({ deps }, RUNTIME_QUEUES.shardFeed, 900);
      const eventsUrl = await createQueueWithDlq({ deps }, RUNTIME_QUEUES.events, 60);
      await clients.s3.send(
        new PutBucketNotificationConfigurationCommand({
          Bucket: config.bucket,
          NotificationConfiguration: {
            QueueConfigurations: [
              { QueueArn: await queueArn(clients, eventsUrl), Events: ["s3:ObjectCreated:*"], Filter: { Key: { FilterRules: [{ Name: "suffix", Value: EXPORT_MANIFEST }] } } },
            ],
          },
        }),
      );
      process.env.SERVERLESS_TF_SHARD_FEED_QUEUE_URL = shardFeedUrl;
      resetStageDeps();
      deps = stageDeps();
      const log = options.stageLog ?? ((line: string) => console.error(line));
      const onError = (e: unknown) => log(`[local runtime] ${(e as Error).message}`);
      const sources = [
        new SqsEventSource(deps.clients, shardFeedUrl, shardFeedHandler, { batchSize: 1, onError }),
        new SqsEventSource(deps.clients, eventsUrl, checkpointHandler, { batchSize: 10, onError }),
      ];
      const settings = awsSettingsFromEnv();
      const workerEnv: Record<string, string> = {
        AWS_ENDPOINT_URL: endpoint,
        AWS_REGION: settings.region,
        AWS_ACCESS_KEY_ID: settings.credentials?.accessKeyId ?? "test",
        AWS_SECRET_ACCESS_KEY: settings.credentials?.secretAccessKey ?? "test",
        SERVERLESS_TF_TABLE: config.tableName,
        SERVERLESS_TF_BUCKET: config.bucket,
      };
      return new LocalRuntime(deps, new ProcessLauncher({ env: workerEnv, ...(options.workerLog ? { log: options.workerLog } : {}) }), sources, emulator);
    } catch (e) {
      await emulator?.stop();
      throw e;
    }
  }

  private activeJobs = 0;

  /** Event sources poll only while a job runs, so a program that is done can exit. */
  acquire(): void {
    if (this.activeJobs++ === 0) this.sources.forEach((s) => s.start());
  }

  async release(): Promise<void> {
    if (--this.activeJobs === 0) await Promise.all(this.sources.map((s) => s.stop()));
  }

  get bucket(): string {
    return this.deps.config.bucket;
  }

  async dispatchShard(event: ShardFeedEvent): Promise<void> {
    await sendShardFeedRequest(this.deps, event);
  }

  async close(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.stop()));
    await this.emulator?.stop();
  }
}

let shared: Promise<LocalRuntime> | undefined;

/** The process-wide default runtime, started on first use and closed when the process exits. */
export function defaultRuntime(): Promise<LocalRuntime> {
  if (!shared) {
    shared = LocalRuntime.start();
  }
  return shared;
}
