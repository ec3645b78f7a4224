/**
 * The local runtime, the embedded default: an AWS emulator (started when no endpoint is
 * given), the same resources the stack defines, the real shard-feed and checkpoint handlers
 * invoked in-process by SQS event source mappings, and workers as local processes.
 */
import { BucketAlreadyOwnedByYou, CreateBucketCommand, PutBucketNotificationConfigurationCommand, type Event } from "@aws-sdk/client-s3";
import { CreateQueueCommand } from "@aws-sdk/client-sqs";
import { handler as checkpointHandler } from "../../functions/checkpoint/handler.ts";
import { createInferenceHandler } from "../../functions/inference/handler.ts";
import { handler as shardFeedHandler } from "../../functions/shard-feed/handler.ts";
import { awsSettingsFromEnv } from "../aws/clients.ts";
import { sendShardFeedRequest } from "../jobs/shard-feed-queue.ts";
import type { ShardFeedEvent } from "../../functions/shard-feed/feed-shard.ts";
import { queueArn } from "../jobs/queues.ts";
import type { JobRuntime } from "./job-runtime.ts";
import { ProcessLauncher } from "../workers/process-launcher.ts";
import { ensureRegistryTable } from "../registry/table.ts";
import { stageDeps, resetStageDeps, type StageDeps } from "../jobs/deps-from-env.ts";
import type { StreamAttachment } from "../../functions/coordinator/start-job.ts";
import { streamFeedHandler } from "../../functions/stream-feed/stream-feed.ts";
import { PythonEngine } from "../../functions/inference/engine.ts";
import { InferenceService } from "../../functions/inference/inference-service.ts";
import { DEFAULT_RECHECK_MS } from "../../functions/inference/latest-model.ts";
import type { JobSpec } from "../protocol/spec.ts";
import { runFitTriggerBatch, type StartFit } from "../../functions/coordinator/fit-trigger.ts";
import { DEFAULT_PREFIX, DLQ_RETENTION_SECONDS, MAX_RECEIVE_COUNT, localProvisioningPlan, queuePlan, runtimeQueueName } from "../resources/definitions.ts";
import { startEmulator, type RunningEmulator } from "./emulator.ts";
import { SqsEventSource } from "./event-source.ts";

export interface LocalRuntimeOptions {
  /** An AWS endpoint to use; default `AWS_ENDPOINT_URL`, else a moto server started here. */
  readonly endpoint?: string;
  /** Where worker log lines go (prefixed with job, role and index); default nowhere. */
  readonly workerLog?: (line: string) => void;
  /** Where stage errors go; default stderr. */
  readonly stageLog?: (line: string) => void;
  /** New data objects under this prefix start a fit (src/triggers/fit-trigger.ts) once `startFitTriggers()` runs. */
  readonly trainingPrefix?: string;
}

/** Runtime-wide queues: shard-feed requests, S3 notifications for the checkpoint stage and for fit triggers. */
export const RUNTIME_QUEUES = { shardFeed: runtimeQueueName(DEFAULT_PREFIX, "shardFeed"), events: runtimeQueueName(DEFAULT_PREFIX, "events"), fitTriggers: runtimeQueueName(DEFAULT_PREFIX, "fitTriggers") } as const;

export interface ServeOptions {
  /** Queues to use; each one not given is created as `stf-serve-<modelId>-input|output|dlq`. */
  readonly inputQueueUrl?: string;
  readonly outputQueueUrl?: string;
  readonly dlqUrl?: string;
  /** How often `latest.json` is re-checked; default 5000 ms. */
  readonly recheckMs?: number;
  /** Records per invocation, as an event source mapping's batch size; default 10. */
  readonly batchSize?: number;
  /** Handler calls at once, as the mapping's maximum concurrency; default 1. They share one engine process. */
  readonly concurrency?: number;
  /** The input queue's visibility timeout when it is created here; default 60 s. */
  readonly visibilityTimeoutSeconds?: number;
  /** Receives of an input message before SQS moves it to the DLQ, when created here; default 3. */
  readonly maxReceiveCount?: number;
  /** Create the output queue as FIFO (`...-output.fifo`): sends then carry the row id as deduplication id. Default false. */
  readonly fifoOutput?: boolean;
}

/** A model served by the inference function through an SQS event source. */
export interface ServedModel {
  readonly modelId: string;
  readonly inputQueueUrl: string;
  readonly outputQueueUrl: string;
  readonly dlqUrl: string;
  readonly service: InferenceService;
  /** Stops polling and the engine process. */
  stop(): Promise<void>;
}

interface RuntimeExtras {
  readonly workerEnv: Readonly<Record<string, string>>;
  readonly fitTriggersUrl: string;
  readonly log: (line: string) => void;
}

async function createQueueWithDlq(runtime: { deps: StageDeps }, name: string, visibilityTimeoutSeconds: number): Promise<string> {
  const sqs = runtime.deps.clients.sqs;
  const { QueueUrl: dlq } = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq`, Attributes: { MessageRetentionPeriod: String(DLQ_RETENTION_SECONDS) } }));
  const redrive = JSON.stringify({ deadLetterTargetArn: await queueArn(runtime.deps.clients, dlq!), maxReceiveCount: MAX_RECEIVE_COUNT });
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: { VisibilityTimeout: String(visibilityTimeoutSeconds), RedrivePolicy: redrive } }));
  return QueueUrl!;
}

export class LocalRuntime implements JobRuntime {
  private constructor(
    readonly deps: StageDeps,
    readonly launcher: ProcessLauncher,
    private readonly sources: SqsEventSource[],
    private readonly emulator: RunningEmulator | undefined,
    private readonly extras: RuntimeExtras,
  ) {}

  private readonly served = new Set<ServedModel>();
  private fitTriggers: SqsEventSource | undefined;

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
      // Names and visibility timeouts as the stack deploys them (src/resources/definitions.ts).
      const plan = localProvisioningPlan({ tableName: config.tableName, bucket: config.bucket, ...(options.trainingPrefix ? { trainingPrefix: options.trainingPrefix } : {}) });
      const shardFeedUrl = await createQueueWithDlq({ deps }, RUNTIME_QUEUES.shardFeed, queuePlan(DEFAULT_PREFIX, "shardFeed").visibilityTimeoutSeconds);
      const eventsUrl = await createQueueWithDlq({ deps }, RUNTIME_QUEUES.events, queuePlan(DEFAULT_PREFIX, "events").visibilityTimeoutSeconds);
      const fitTriggersUrl = await createQueueWithDlq({ deps }, RUNTIME_QUEUES.fitTriggers, queuePlan(DEFAULT_PREFIX, "fitTriggers").visibilityTimeoutSeconds);
      const urls: Record<string, string> = { events: eventsUrl, fitTriggers: fitTriggersUrl };
      // The one place the bucket's notifications are set (a put replaces them all), as the stack
      // sets them (S3 refuses overlapping filters: the plan's prefixes are disjoint).
      await clients.s3.send(
        new PutBucketNotificationConfigurationCommand({
          Bucket: config.bucket,
          NotificationConfiguration: {
            QueueConfigurations: await Promise.all(
              plan.notifications.map(async (n) => ({
                QueueArn: await queueArn(clients, urls[n.queue]!),
                Events: [...n.events] as Event[],
                Filter: { Key: { FilterRules: [{ Name: "prefix" as const, Value: n.prefix }, ...(n.suffix ? [{ Name: "suffix" as const, Value: n.suffix }] : [])] } },
              })),
            ),
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
      return new LocalRuntime(deps, new ProcessLauncher({ env: workerEnv, ...(options.workerLog ? { log: options.workerLog } : {}) }), sources, emulator, { workerEnv, fitTriggersUrl, log });
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

  /** Forwards a queue table's rows to a streaming job's feed, as an event source mapping would. */
  async attachStream(spec: JobSpec, sourceQueueUrl: string): Promise<StreamAttachment> {
    const source = new SqsEventSource(this.deps.clients, sourceQueueUrl, streamFeedHandler(this.deps, spec, this.extras.log), {
      batchSize: 10,
      onError: (e) => this.extras.log(`[stream-feed ${spec.jobId}] ${(e as Error).message}`),
    });
    source.start();
    return { detach: () => source.stop() };
  }

  /**
   * Serves `modelId` with the inference function: rows sent to the input queue come back on the
   * output queue, from the version `latest.json` names (followed as it moves).
   *
   * @example
   * const served = await runtime.serveModel("digits");
   * await sqs.send(new SendMessageCommand({ QueueUrl: served.inputQueueUrl, MessageBody: JSON.stringify({ v: 1, id: "r-1", row: { pixels } }) }));
   * // served.outputQueueUrl receives {"v":1,"kind":"result","id":"r-1","version":...,"row":{"digit":"3","score":0.98}}
   */
  async serveModel(modelId: string, options: ServeOptions = {}): Promise<ServedModel> {
    const sqs = this.deps.clients.sqs;
    const create = async (name: string, attributes: Record<string, string> = {}) => (await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))).QueueUrl!;
    const dlqUrl = options.dlqUrl ?? (await create(`stf-serve-${modelId}-dlq`, { MessageRetentionPeriod: String(14 * 24 * 3600) }));
    const redrive = JSON.stringify({ deadLetterTargetArn: await queueArn(this.deps.clients, dlqUrl), maxReceiveCount: options.maxReceiveCount ?? 3 });
    const inputQueueUrl = options.inputQueueUrl ?? (await create(`stf-serve-${modelId}-input`, { VisibilityTimeout: String(options.visibilityTimeoutSeconds ?? 60), RedrivePolicy: redrive }));
    const outputQueueUrl =
      options.outputQueueUrl ?? (options.fifoOutput ? await create(`stf-serve-${modelId}-output.fifo`, { FifoQueue: "true" }) : await create(`stf-serve-${modelId}-output`));
    const settings = { bucket: this.bucket, tableName: this.deps.config.tableName, modelId, outputQueueUrl, dlqUrl, recheckMs: options.recheckMs ?? DEFAULT_RECHECK_MS };
    const handler = createInferenceHandler(settings, new InferenceService(this.deps.clients, settings, new PythonEngine({ env: this.extras.workerEnv }), this.extras.log));
    const source = new SqsEventSource(this.deps.clients, inputQueueUrl, handler, { batchSize: options.batchSize ?? 10, concurrency: options.concurrency ?? 1, onError: (e) => this.extras.log(`[inference ${modelId}] ${(e as Error).message}`) });
    source.start();
    const served: ServedModel = {
      modelId,
      inputQueueUrl,
      outputQueueUrl,
      dlqUrl,
      service: handler.service,
      stop: async () => {
        this.served.delete(served);
        await source.stop();
        await handler.service.close();
      },
    };
    this.served.add(served);
    return served;
  }

  /** Starts fits for new data objects under the training prefix (see src/triggers/fit-trigger.ts); returns the stop. */
  startFitTriggers(): () => Promise<void> {
    if (!this.fitTriggers) {
      const log = this.extras.log;
      const start: StartFit = async (params, table, jobId) => {
        // Imported here: the estimator module imports this one (its default runtime).
        const { TFEstimator } = await import("../api/estimator.ts");
        const estimator = new TFEstimator().withRuntime(this);
        estimator.params.loadJSON(params.toJSON(), "fit trigger");
        return new Promise<void>((resolve, reject) => {
          let started = false;
          estimator
            .fit(table, { jobId, onStarted: () => ((started = true), resolve()) })
            .then(
              (model) => log(`[fit-trigger] job ${jobId} published ${model.metadata.modelId} version ${model.metadata.version}`),
              (e: unknown) => (started ? log(`[fit-trigger] job ${jobId} failed: ${(e as Error).message}`) : reject(e)),
            );
        });
      };
      this.fitTriggers = new SqsEventSource(this.deps.clients, this.extras.fitTriggersUrl, (event) => runFitTriggerBatch(this.deps, event, start, log), {
        batchSize: queuePlan(DEFAULT_PREFIX, "fitTriggers").batchSize,
        onError: (e) => log(`[fit-trigger] ${(e as Error).message}`),
      });
      this.fitTriggers.start();
    }
    return async () => {
      await this.fitTriggers?.stop();
      this.fitTriggers = undefined;
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.served].map((s) => s.stop()));
    await this.fitTriggers?.stop();
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
