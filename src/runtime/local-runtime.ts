/**
 * The local runtime, the embedded default: an AWS emulator (started when no endpoint is given),
 * the same resources the stack defines, the functions' own handlers invoked in-process by SQS
 * event source mappings, and workers as local processes.
 *
 * Each function is loaded from its module (src/runtime/functions.ts) and built from explicit
 * dependencies; nothing here writes the process environment.
 */
import { awsSettingsFromEnv, type AwsSettings } from "../aws/clients.ts";
import { createDeps, type FunctionDeps } from "../jobs/deps.ts";
import { ensureServedQueues } from "../jobs/served-queues.ts";
import { sendShardFeedRequest } from "../jobs/shard-feed-queue.ts";
import { functionConfigFromEnv } from "../jobs/settings.ts";
import type { StartedJob, StreamAttachment } from "../jobs/started-job.ts";
import type { ShardFeedEvent } from "../protocol/shard-feed-request.ts";
import type { JobSpec } from "../protocol/spec.ts";
import type { JobRequest } from "../protocol/start-request.ts";
import { DEFAULT_PREFIX, FUNCTIONS, queuePlan, startingBatches } from "../resources/definitions.ts";
import { putObject } from "../storage/objects.ts";
import { ProcessLauncher } from "../workers/process-launcher.ts";
import { startEmulator, type RunningEmulator } from "./emulator.ts";
import { SqsEventSource } from "./event-source.ts";
import { loadFunction, type FunctionFactories, type InferenceFunction, type StartFit } from "./functions.ts";
import type { InProcessRuntime, JobRuntime, RunOptions, StartOptions } from "./job-runtime.ts";
import { runJob } from "./run-job.ts";
import { startStreamingJob } from "./streaming-job.ts";
import { provisionLocalStack, RUNTIME_QUEUES } from "./provision.ts";

export { RUNTIME_QUEUES };

export interface LocalRuntimeOptions {
  /** An AWS endpoint to use; default `AWS_ENDPOINT_URL`, else a moto server started here. */
  readonly endpoint?: string;
  /** Where worker log lines go (prefixed with job, role and index); default nowhere. */
  readonly workerLog?: (line: string) => void;
  /** Where function errors go; default stderr. */
  readonly functionLog?: (line: string) => void;
  /** New data objects under this prefix start a fit (functions/coordinator/fit-trigger.ts) once `startFitTriggers()` runs. */
  readonly trainingPrefix?: string;
}

/** How often a served model re-checks `latest.json` unless told otherwise (as the stack's default). */
const DEFAULT_RECHECK_MS = 5_000;

export interface ServeOptions {
  /** Queues to use; each one not given is created as `stf-serve-<modelId>-input|output|dlq`. */
  readonly inputQueueUrl?: string;
  readonly outputQueueUrl?: string;
  readonly dlqUrl?: string;
  /** How often `latest.json` is re-checked; default 5000 ms. */
  readonly recheckMs?: number;
  /** Records per invocation, as an event source mapping's batch size (1 to 10,000); default 10. */
  readonly batchSize?: number;
  /** Seconds to gather a batch, as the mapping's batching window (needed above 10 records); default 0. */
  readonly maxBatchingWindowSeconds?: number;
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
  readonly service: InferenceFunction;
  /** Stops polling and the engine process. */
  stop(): Promise<void>;
}

type Functions = { readonly [N in keyof FunctionFactories]: FunctionFactories[N] };

async function loadFunctions(): Promise<Functions> {
  const [coordinator, shardFeed, checkpoint, inference, streamFeed] = await Promise.all([
    loadFunction("coordinator"),
    loadFunction("shard-feed"),
    loadFunction("checkpoint"),
    loadFunction("inference"),
    loadFunction("stream-feed"),
  ]);
  return { coordinator, "shard-feed": shardFeed, checkpoint, inference, "stream-feed": streamFeed };
}

/** The environment of a worker process: the endpoint, region and credentials, the table and bucket (what the task definition sets on AWS). */
function workerEnvOf(aws: AwsSettings, deps: FunctionDeps): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: aws.endpoints.sqs!,
    AWS_REGION: aws.region,
    AWS_ACCESS_KEY_ID: aws.credentials?.accessKeyId ?? "test",
    AWS_SECRET_ACCESS_KEY: aws.credentials?.secretAccessKey ?? "test",
    SERVERLESS_TF_TABLE: deps.config.tableName,
    SERVERLESS_TF_BUCKET: deps.config.bucket,
  };
}

/** Batch size and concurrency of a runtime queue's mapping, as the stack's event source mappings (src/resources/definitions.ts). */
function stageMapping(queue: "shardFeed" | "events" | "fitTriggers"): { batchSize: number; concurrency: number } {
  const plan = queuePlan(DEFAULT_PREFIX, queue);
  return { batchSize: plan.batchSize, concurrency: startingBatches(FUNCTIONS[plan.consumer].reservedConcurrency) };
}

/**
 * The embedded default runtime, for a laptop or CI: an AWS emulator (a moto server, unless
 * `AWS_ENDPOINT_URL` or `endpoint` names one), the stack's resources on it, the functions'
 * handlers run in-process, and workers as local processes. Stages without a runtime of their
 * own use a shared one; start one yourself to upload data, serve models and close it.
 *
 * @example
 * const runtime = await LocalRuntime.start();
 * try {
 *   await runtime.upload("datasets/digits/train/part-0.jsonl", readFileSync("part-0.jsonl"));
 *   const model = await estimator.withRuntime(runtime).fit(Table.fromS3(`s3://${runtime.bucket}/datasets/digits/train/`, schema));
 * } finally {
 *   await runtime.close();
 * }
 */
export class LocalRuntime implements JobRuntime, InProcessRuntime {
  private readonly served = new Set<ServedModel>();
  private fitTriggers: SqsEventSource | undefined;
  private activeJobs = 0;

  private constructor(
    readonly deps: FunctionDeps,
    /** The AWS endpoint the runtime, its functions and its workers use. */
    readonly endpoint: string,
    readonly launcher: ProcessLauncher,
    private readonly functions: Functions,
    private readonly sources: readonly SqsEventSource[],
    private readonly fitTriggersUrl: string,
    private readonly emulator: RunningEmulator | undefined,
    private readonly log: (line: string) => void,
  ) {}

  static async start(options: LocalRuntimeOptions = {}): Promise<LocalRuntime> {
    let emulator: RunningEmulator | undefined;
    const endpoint = options.endpoint ?? process.env.AWS_ENDPOINT_URL ?? (emulator = await startEmulator()).endpoint;
    try {
      const fromEnv = awsSettingsFromEnv(process.env);
      const aws: AwsSettings = {
        ...fromEnv,
        endpoints: { s3: endpoint, sqs: endpoint, dynamodb: endpoint },
        credentials: fromEnv.credentials ?? { accessKeyId: "test", secretAccessKey: "test" },
      };
      const config = functionConfigFromEnv(process.env);
      const provisioning = createDeps(config, aws);
      const urls = await provisionLocalStack(provisioning.clients, { tableName: config.tableName, bucket: config.bucket, ...(options.trainingPrefix ? { trainingPrefix: options.trainingPrefix } : {}) });
      const deps: FunctionDeps = { ...provisioning, config: { ...config, shardFeedQueueUrl: urls.shardFeed } };
      const functions = await loadFunctions();
      const log = options.functionLog ?? ((line: string) => console.error(line));
      const onError = (e: unknown) => log(`[local runtime] ${(e as Error).message}`);
      const sources = [
        new SqsEventSource(deps.clients, urls.shardFeed, functions["shard-feed"].createShardFeedHandler(deps, log), { ...stageMapping("shardFeed"), onError }),
        new SqsEventSource(deps.clients, urls.events, functions.checkpoint.createCheckpointHandler(deps, log), { ...stageMapping("events"), onError }),
      ];
      const workerEnv = workerEnvOf(aws, deps);
      const launcher = new ProcessLauncher({ env: workerEnv, ...(options.workerLog ? { log: options.workerLog } : {}) });
      return new LocalRuntime(deps, endpoint, launcher, functions, sources, urls.fitTriggers, emulator, log);
    } catch (e) {
      await emulator?.stop();
      throw e;
    }
  }

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

  /**
   * Puts `body` into the runtime's bucket under `key`; returns its s3:// URI (for `Table.fromS3`).
   *
   * @example
   * const uri = await runtime.upload("datasets/digits/train/part-0.jsonl", readFileSync("part-0.jsonl"));
   */
  async upload(key: string, body: Uint8Array | string): Promise<string> {
    await putObject(this.deps.clients, { bucket: this.bucket, key }, body);
    return `s3://${this.bucket}/${key}`;
  }

  runJob(request: JobRequest, options?: RunOptions) {
    return runJob(this, request, options);
  }

  startStreamingJob(request: JobRequest, options?: RunOptions) {
    return startStreamingJob(this, request, options);
  }

  /** What this runtime is, for a program's log. */
  describe(): string {
    return `local (AWS endpoint ${this.endpoint}, bucket ${this.bucket}, registry table ${this.deps.config.tableName})`;
  }

  /** Starts a job through the coordinator's own start, with this runtime's launcher and shard-feed queue. */
  startJob(request: JobRequest, options: StartOptions = {}): Promise<StartedJob> {
    return this.functions.coordinator.startJob(this.deps, request, {
      launcher: this.launcher,
      dispatchShard: options.dispatchShard ?? ((event) => this.dispatchShard(event)),
      attachStream: (spec, url) => this.attachStream(spec, url),
      ...(options.hooks ? { hooks: options.hooks } : {}),
    });
  }

  /**
   * This runtime with every shard's dispatch passed through `intercept`, which hands it on with
   * `dispatch` (a bench that holds the feed until its worker is up, a test that feeds twice).
   *
   * @example
   * await runJob(runtime.interceptingShards(async (event, dispatch) => { await workerReady; await dispatch(event); }), request);
   */
  interceptingShards(intercept: (event: ShardFeedEvent, dispatch: (event: ShardFeedEvent) => Promise<void>) => Promise<void>): JobRuntime & InProcessRuntime {
    const runtime: JobRuntime & InProcessRuntime = {
      deps: this.deps,
      acquire: () => this.acquire(),
      release: () => this.release(),
      startJob: (request, options = {}) => this.startJob(request, { ...options, dispatchShard: (event) => intercept(event, (e) => this.dispatchShard(e)) }),
      runJob: (request, options) => runJob(runtime, request, options),
      startStreamingJob: (request, options) => startStreamingJob(runtime, request, options),
    };
    return runtime;
  }

  /** Hands a shard to the shard-feed function through its queue, as the coordinator does on AWS. */
  async dispatchShard(event: ShardFeedEvent): Promise<void> {
    await sendShardFeedRequest(this.deps, event);
  }

  /** Forwards a queue table's rows to a streaming job's feed, as an event source mapping would. */
  async attachStream(spec: JobSpec, sourceQueueUrl: string): Promise<StreamAttachment> {
    const source = new SqsEventSource(this.deps.clients, sourceQueueUrl, this.functions["stream-feed"].createStreamFeedHandler(this.deps, spec, this.log), {
      batchSize: 10,
      onError: (e) => this.log(`[stream-feed ${spec.jobId}] ${(e as Error).message}`),
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
    const { inputQueueUrl, outputQueueUrl, dlqUrl } = await ensureServedQueues(
      this.deps.clients,
      modelId,
      { visibilityTimeoutSeconds: options.visibilityTimeoutSeconds ?? 60, maxReceiveCount: options.maxReceiveCount ?? 3, fifoOutput: options.fifoOutput ?? false },
      { ...(options.inputQueueUrl ? { inputQueueUrl: options.inputQueueUrl } : {}), ...(options.outputQueueUrl ? { outputQueueUrl: options.outputQueueUrl } : {}), ...(options.dlqUrl ? { dlqUrl: options.dlqUrl } : {}) },
    );
    const settings = { bucket: this.bucket, tableName: this.deps.config.tableName, modelId, outputQueueUrl, dlqUrl, recheckMs: options.recheckMs ?? DEFAULT_RECHECK_MS };
    const service = this.functions.inference.createInferenceFunction(this.deps, settings, this.log);
    const source = new SqsEventSource(this.deps.clients, inputQueueUrl, (event) => service.handle(event), {
      batchSize: options.batchSize ?? 10,
      maxBatchingWindowSeconds: options.maxBatchingWindowSeconds ?? 0,
      concurrency: options.concurrency ?? 1,
      onError: (e) => this.log(`[inference ${modelId}] ${(e as Error).message}`),
    });
    source.start();
    const served: ServedModel = {
      modelId,
      inputQueueUrl,
      outputQueueUrl,
      dlqUrl,
      service,
      stop: async () => {
        this.served.delete(served);
        await source.stop();
        await service.close();
      },
    };
    this.served.add(served);
    return served;
  }

  /**
   * Starts fits for new data objects under the training prefix (functions/coordinator/fit-trigger.ts)
   * with `start`; returns the stop. `startFitTriggers(runtime)` in the API starts each with a `TFEstimator`.
   */
  runFitTriggers(start: StartFit): () => Promise<void> {
    if (!this.fitTriggers) {
      this.fitTriggers = new SqsEventSource(this.deps.clients, this.fitTriggersUrl, this.functions.coordinator.createFitTriggerHandler(this.deps, start, this.log), {
        ...stageMapping("fitTriggers"),
        onError: (e) => this.log(`[fit-trigger] ${(e as Error).message}`),
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
