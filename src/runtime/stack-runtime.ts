/**
 * The runtime for a deployed stack: the same `fit`, `transform`, `Pipeline.fit`, `serveModel` and
 * save/load calls as on the local runtime, run by the stack's own functions. A job is started by
 * invoking the coordinator function (the stack's entry), watched and finished by its job-watch
 * function, and followed from here through the registry (state, and each member's last epoch);
 * a fit's model is read from its S3 metadata, a transform's rows from `jobs/<id>/output/`.
 *
 * @example
 * const runtime = await StackRuntime.fromStack("ServerlessTf"); // was: await LocalRuntime.start()
 * const model = await new TFEstimator().withRuntime(runtime) ... .fit(table);
 */
import { CloudFormationClient, DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import { CreateEventSourceMappingCommand, DeleteEventSourceMappingCommand, InvokeCommand, LambdaClient, ListEventSourceMappingsCommand } from "@aws-sdk/client-lambda";
import { awsSettingsFromEnv, destroyAwsClients, type AwsSettings } from "../aws/clients.ts";
import { ConfigError, ServerlessTfError } from "../errors.ts";
import { createDeps, type FunctionDeps } from "../jobs/deps.ts";
import { queueArn } from "../jobs/queues.ts";
import { readJobOutput } from "../jobs/output-store.ts";
import { uploadScripts } from "../jobs/job-code.ts";
import { ensureServedQueues, type ServedQueues } from "../jobs/served-queues.ts";
import { JobFailedError, JobTimeoutError } from "../jobs/watch.ts";
import { checkModelMetadata, type ModelMetadata } from "../protocol/model-metadata.ts";
import { memberKey, newJobId, parseS3Uri, s3Uri } from "../protocol/names.ts";
import { readLatest } from "../storage/latest-pointer.ts";
import type { JobRequest, WatchOverrides } from "../protocol/start-request.ts";
import { rowToJson } from "../protocol/table-source.ts";
import { FINAL_JOB_STATES } from "../registry/types.ts";
import { INFERENCE_EVENT_SOURCE, SERVING_FUNCTION, STACK_OUTPUTS, servedQueuePlan } from "../resources/definitions.ts";
import { getJson, putObject } from "../storage/objects.ts";
import type { JobOutcome, JobRuntime, RunOptions, StreamingJob } from "./job-runtime.ts";
import { firstVersion, sendStop } from "./streaming-job.ts";
import { unmapStream } from "../jobs/stream-mapping.ts";
import { parseJobSpec, type ServingMode } from "../protocol/spec.ts";

/** What the runtime reads from the stack's outputs (the construct sets them, under STACK_OUTPUTS in src/resources/definitions.ts). */
export interface StackOutputs {
  readonly bucketName: string;
  readonly tableName: string;
  readonly shardFeedQueueUrl: string;
  readonly jobWatchQueueUrl: string;
  readonly coordinatorFunctionName: string;
  /** The function of each serving mode: the inference image (script) and the zip function with the onnxruntime layer (signature). */
  readonly inferenceFunctionName: string;
  readonly signatureInferenceFunctionName: string;
  /** How the stack maps its served models to the inference function, for one `serveModel` maps. */
  readonly inferenceBatchSize: number;
  readonly inferenceMaxBatchingWindowSeconds: number;
}

export interface StackRuntimeOptions {
  /** AWS settings for this program's calls; default from the environment (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`). */
  readonly aws?: AwsSettings;
  /** The Lambda API's endpoint, when not AWS's (the hosted stack's). */
  readonly lambdaEndpoint?: string;
  /** What `describe()` says; default "deployed stack". */
  readonly description?: string;
  /** How often a job's state is read while it runs; default 1000 ms. */
  readonly pollMs?: number;
  /** Called by `close()`, after the runtime's own clients are closed (a hosted stack stops with its runtime). */
  readonly onClose?: () => Promise<void>;
}

/**
 * The coordinator refused a start (bad settings, a job id taken): its typed error's name and message.
 *
 * @example
 * try {
 *   await estimator.withRuntime(stackRuntime).fit(table);
 * } catch (e) {
 *   if (e instanceof JobRejectedError) console.error(`the stack refused the job (${e.type}): ${e.detail}`);
 *   else throw e;
 * }
 */
export class JobRejectedError extends ServerlessTfError {
  constructor(
    readonly type: string,
    readonly detail: string,
  ) {
    super(`the stack's coordinator rejected the job (${type}): ${detail}`);
  }
}

/**
 * A function of the stack failed instead of answering (its error type and message, as Lambda reports them).
 *
 * @example
 * try {
 *   await model.withRuntime(stackRuntime).transform(table);
 * } catch (e) {
 *   if (e instanceof StackFunctionError) console.error(`${e.message}: the function's own log has the rest`);
 *   else throw e;
 * }
 */
export class StackFunctionError extends ServerlessTfError {}

/** A model served by the stack's inference function from its own queues. */
export interface StackServedModel extends ServedQueues {
  readonly modelId: string;
  /** The event source mapping feeding the inference function from the input queue. */
  readonly mappingId: string;
  /** Removes the mapping if `serveModel` created it; the queues stay. */
  stop(): Promise<void>;
}

export interface StackServeOptions {
  /** Records per invocation (1 to 10,000); default the stack's `inferenceBatchSize`. */
  readonly batchSize?: number;
  /** Seconds to gather a batch (0 to 300; at least 1 above 10 records); default the stack's `inferenceMaxBatchingWindowSeconds`. */
  readonly maxBatchingWindowSeconds?: number;
  /** Which function serves it; default the mode of the model's latest version (`script` before one is published). */
  readonly servingMode?: ServingMode;
}

function outputsOf(raw: Readonly<Record<string, string | undefined>>, source: string): StackOutputs {
  const need = (key: string) => {
    const v = raw[key];
    if (!v) throw new ConfigError(`${source} output ${key}`, v ?? null, "a value: deploy the stack of infra/, or a stack holding the ServerlessTf construct (serverless-tf/cdk), which sets it");
    return v;
  };
  const K = STACK_OUTPUTS;
  const int = (key: string, fallback: number) => (raw[key] === undefined ? fallback : Number(need(key)));
  return {
    bucketName: need(K.bucketName),
    tableName: need(K.tableName),
    shardFeedQueueUrl: need(K.shardFeedQueueUrl),
    jobWatchQueueUrl: need(K.jobWatchQueueUrl),
    coordinatorFunctionName: need(K.functionName.coordinator),
    inferenceFunctionName: need(K.functionName.inference),
    signatureInferenceFunctionName: need(K.functionName[SERVING_FUNCTION.signature]),
    inferenceBatchSize: int(K.inferenceBatchSize, INFERENCE_EVENT_SOURCE.batchSize),
    inferenceMaxBatchingWindowSeconds: int(K.inferenceMaxBatchingWindowSeconds, INFERENCE_EVENT_SOURCE.maxBatchingWindowSeconds),
  };
}

/**
 * The runtime of a deployed stack (the ServerlessTf construct's): the same `fit`, `transform`,
 * `serveModel` and save/load calls as on {@link LocalRuntime}, run by the stack's own functions
 * and followed from here through the registry.
 *
 * @example
 * const runtime = await StackRuntime.fromStack("MlStack"); // was: await LocalRuntime.start()
 * try {
 *   const model = await estimator.withRuntime(runtime).fit(Table.fromS3(`s3://${runtime.bucket}/datasets/digits/train/`, schema));
 *   const served = await runtime.serveModel(model.metadata.modelId);
 * } finally {
 *   await runtime.close();
 * }
 */
export class StackRuntime implements JobRuntime {
  private constructor(
    readonly deps: FunctionDeps,
    readonly outputs: StackOutputs,
    private readonly lambda: LambdaClient,
    private readonly options: StackRuntimeOptions,
  ) {}

  /** The runtime of the stack `stackName`, from its CloudFormation outputs. */
  static async fromStack(stackName = "ServerlessTf", options: StackRuntimeOptions = {}): Promise<StackRuntime> {
    const aws = options.aws ?? awsSettingsFromEnv(process.env);
    const cfn = new CloudFormationClient({ region: aws.region, ...(aws.credentials ? { credentials: aws.credentials } : {}) });
    try {
      const { Stacks = [] } = await cfn.send(new DescribeStacksCommand({ StackName: stackName }));
      const raw = Object.fromEntries((Stacks[0]?.Outputs ?? []).map((o) => [o.OutputKey ?? "", o.OutputValue]));
      return StackRuntime.fromOutputs(raw, { description: `deployed stack ${stackName}`, ...options, aws });
    } finally {
      cfn.destroy();
    }
  }

  /** The runtime of a stack given its outputs (`cdk deploy --outputs-file`, or the hosted stack's). */
  static fromOutputs(outputs: Readonly<Record<string, string | undefined>>, options: StackRuntimeOptions = {}): StackRuntime {
    const checked = outputsOf(outputs, options.description ?? "the stack");
    const aws = options.aws ?? awsSettingsFromEnv(process.env);
    const deps = createDeps({ tableName: checked.tableName, bucket: checked.bucketName, shardFeedQueueUrl: checked.shardFeedQueueUrl, jobWatchQueueUrl: checked.jobWatchQueueUrl }, aws);
    const lambda = new LambdaClient({ region: aws.region, maxAttempts: 3, ...(aws.credentials ? { credentials: aws.credentials } : {}), ...(options.lambdaEndpoint ? { endpoint: options.lambdaEndpoint } : {}) });
    return new StackRuntime(deps, checked, lambda, options);
  }

  get bucket(): string {
    return this.deps.config.bucket;
  }

  describe(): string {
    return `${this.options.description ?? "deployed stack"}, bucket ${this.bucket}, registry table ${this.deps.config.tableName}`;
  }

  /** Puts `body` into the stack's bucket under `key`; returns its s3:// URI (for `Table.fromS3`). */
  async upload(key: string, body: Uint8Array | string): Promise<string> {
    await putObject(this.deps.clients, { bucket: this.bucket, key }, body);
    return `s3://${this.bucket}/${key}`;
  }

  async runJob(request: JobRequest, options: RunOptions = {}): Promise<JobOutcome> {
    const jobId = options.jobId ?? request.jobId ?? newJobId(request.mode === "train" ? "fit" : "transform");
    const staged = await this.stage({ ...request, jobId });
    const watch: WatchOverrides = {
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.maxWorkerRestarts !== undefined ? { maxWorkerRestarts: options.maxWorkerRestarts } : {}),
      ...(options.progressTimeoutMs !== undefined ? { progressTimeoutMs: options.progressTimeoutMs } : {}),
    };
    const response = await this.invoke<{ status: string; jobId?: string; error?: { type: string; message: string } }>(this.outputs.coordinatorFunctionName, { action: "start", request: staged, watch });
    if (response.status === "rejected") throw new JobRejectedError(response.error?.type ?? "Error", response.error?.message ?? "no reason given");
    options.onStarted?.(jobId);
    const job = await this.follow(jobId, options);
    if (request.mode === "inference") return { mode: "inference", jobId, rows: await readJobOutput(this.deps, jobId) };
    let model: ModelMetadata | null = null;
    if (job.modelUri) {
      const found = await getJson<unknown>(this.deps.clients, parseS3Uri(job.modelUri, "modelUri"));
      if (found) model = checkModelMetadata(found.value, job.modelUri);
    }
    return { mode: "train", jobId, model };
  }

  /**
   * A streaming fit on the stack: the coordinator maps the table's queue (named `stf-stream-...`) to
   * the stream-feed function; `stop()` removes the mapping, tells the worker to finish, and waits for
   * the job-watch function to end the job.
   */
  async startStreamingJob(request: JobRequest, options: RunOptions = {}): Promise<{ job: StreamingJob; first: ModelMetadata }> {
    const jobId = options.jobId ?? request.jobId ?? newJobId("stream");
    const staged = await this.stage({ ...request, jobId });
    // As locally: a restarted streaming worker would replay nothing, and waiting for rows is no hang.
    const response = await this.invoke<{ status: string; error?: { type: string; message: string } }>(this.outputs.coordinatorFunctionName, {
      action: "start",
      request: staged,
      watch: { maxWorkerRestarts: 0, progressTimeoutMs: 0 },
    });
    if (response.status === "rejected") throw new JobRejectedError(response.error?.type ?? "Error", response.error?.message ?? "no reason given");
    options.onStarted?.(jobId);
    const { timeoutMs: _untilFirst, ...follow } = options;
    const done = this.follow(jobId, follow).then(() => undefined);
    done.catch(() => undefined); // observed through the handle
    let stopping = false;
    const job: StreamingJob = {
      jobId,
      done,
      stop: async () => {
        if (!stopping) {
          stopping = true;
          await unmapStream(this.deps, this.lambda, jobId);
          const record = await this.deps.registry.getJob(jobId);
          if (record) await sendStop(this.deps, parseJobSpec(record.spec));
        }
        await done;
      },
    };
    return { job, first: await firstVersion(this.deps, jobId, done, options.timeoutMs ?? 30 * 60_000, () => job.stop()) };
  }

  /**
   * Serves `modelId` with the stack's inference function: its queues (made if missing) and an event
   * source mapping from the input queue, unless one exists (the construct's `servedModels`).
   */
  async serveModel(modelId: string, options: StackServeOptions = {}): Promise<StackServedModel> {
    // As the construct makes them (servedModels), so a model mapped here behaves as one mapped at deploy.
    const plan = servedQueuePlan(modelId);
    const queues = await ensureServedQueues(this.deps.clients, modelId, { visibilityTimeoutSeconds: plan.input.visibilityTimeoutSeconds, maxReceiveCount: plan.input.maxReceiveCount });
    const arn = await queueArn(this.deps.clients, queues.inputQueueUrl);
    const mode = options.servingMode ?? (await this.latestServingMode(modelId));
    const functionOf = { script: this.outputs.inferenceFunctionName, signature: this.outputs.signatureInferenceFunctionName } as const;
    const fn = functionOf[mode];
    const other = functionOf[mode === "script" ? "signature" : "script"];
    if ((await this.lambda.send(new ListEventSourceMappingsCommand({ FunctionName: other, EventSourceArn: arn }))).EventSourceMappings?.length) {
      // Two functions polling one queue would split its rows between two modes.
      throw new ConfigError(`serveModel("${modelId}") servingMode`, mode, `the mode whose function already reads ${queues.inputQueueUrl} (${other}): stop that mapping first, or serve the model in its other mode`);
    }
    const existing = (await this.lambda.send(new ListEventSourceMappingsCommand({ FunctionName: fn, EventSourceArn: arn }))).EventSourceMappings?.[0];
    const mappingId =
      existing?.UUID ??
      (
        await this.lambda.send(
          new CreateEventSourceMappingCommand({
            FunctionName: fn,
            EventSourceArn: arn,
            BatchSize: options.batchSize ?? this.outputs.inferenceBatchSize,
            MaximumBatchingWindowInSeconds: options.maxBatchingWindowSeconds ?? this.outputs.inferenceMaxBatchingWindowSeconds,
            FunctionResponseTypes: ["ReportBatchItemFailures"],
          }),
        )
      ).UUID!;
    return {
      modelId,
      ...queues,
      mappingId,
      stop: async () => {
        if (!existing) await this.lambda.send(new DeleteEventSourceMappingCommand({ UUID: mappingId }));
      },
    };
  }

  /** The serving mode of the model's latest published version; `script` when there is none yet. */
  private async latestServingMode(modelId: string): Promise<ServingMode> {
    const pointer = await readLatest(this.deps.clients, this.bucket, modelId);
    if (!pointer) return "script";
    const metadata = await getJson<unknown>(this.deps.clients, parseS3Uri(pointer.metadataUri, "latest.json metadataUri"));
    return metadata ? (checkModelMetadata(metadata.value, pointer.metadataUri).serving?.mode ?? "script") : "script";
  }

  async close(): Promise<void> {
    this.lambda.destroy();
    destroyAwsClients(this.deps.clients);
    await this.options.onClose?.();
  }

  /** Local scripts and in-memory rows go to S3 first: the coordinator function reads neither this machine's files nor a payload over Lambda's 6 MB. */
  private async stage(request: JobRequest & { readonly jobId: string }): Promise<JobRequest> {
    const { jobId } = request;
    const uploaded = (scripts: readonly string[]) => uploadScripts(this.deps.clients, jobId, this.bucket, scripts);
    const inference = request.model?.inference;
    const model = request.model && inference ? { ...request.model, inference: { ...inference, python: { ...inference.python, scripts: await uploaded(inference.python.scripts) } } } : request.model;
    let source = request.source;
    if (source.kind === "rows") {
      const perPart = request.rowsPerShard ?? 2_000;
      const rows = source.rows;
      const parts = Math.max(1, Math.ceil(rows.length / perPart));
      await Promise.all(
        Array.from({ length: parts }, (_, i) => {
          const slice = rows.slice(i * perPart, (i + 1) * perPart);
          return this.upload(`jobs/${jobId}/input/part-${String(i).padStart(5, "0")}.jsonl`, slice.map(rowToJson).join("\n") + (slice.length ? "\n" : ""));
        }),
      );
      source = { kind: "s3", uri: s3Uri({ bucket: this.bucket, key: `jobs/${jobId}/input/` }), format: "jsonl" };
    }
    return { ...request, python: { ...request.python, scripts: await uploaded(request.python.scripts) }, model: model ?? null, source };
  }

  private async invoke<T>(functionName: string, payload: unknown): Promise<T> {
    const out = await this.lambda.send(new InvokeCommand({ FunctionName: functionName, Payload: Buffer.from(JSON.stringify(payload)) }));
    const text = out.Payload ? Buffer.from(out.Payload).toString("utf8") : "null";
    if (out.FunctionError) {
      const error = JSON.parse(text) as { errorType?: string; errorMessage?: string };
      throw new StackFunctionError(`${functionName} failed: ${error.errorType ?? "Error"}: ${error.errorMessage ?? text}`);
    }
    return JSON.parse(text) as T;
  }

  /** Reads the job until the job-watch function has given it a final state; reports each member's new epochs. */
  private async follow(jobId: string, options: RunOptions) {
    const deadline = options.timeoutMs !== undefined ? Date.now() + options.timeoutMs + 120_000 : Number.POSITIVE_INFINITY;
    const seenEpoch = new Map<string, unknown>();
    for (;;) {
      const job = await this.deps.registry.getJob(jobId);
      if (options.onProgress) {
        for (const m of await this.deps.registry.members(jobId)) {
          const last = m.progress?.lastEpoch;
          const key = memberKey(m);
          if (last && seenEpoch.get(key) !== last.epoch) {
            seenEpoch.set(key, last.epoch);
            options.onProgress({ ...last, member: { role: m.role, index: m.index } });
          }
        }
      }
      if (job && FINAL_JOB_STATES.includes(job.state)) {
        if (job.state !== "SUCCEEDED") throw new JobFailedError(jobId, job.error ?? `ended ${job.state}`);
        return job;
      }
      if (Date.now() > deadline) throw new JobTimeoutError(`job ${jobId} was not finished by the stack's job-watch within ${options.timeoutMs} ms (+2 min); its state: ${job?.state ?? "not registered"}`);
      await new Promise((r) => setTimeout(r, this.options.pollMs ?? 1_000));
    }
  }
}
