/**
 * The coordinator's core: starts a job. It validates the request, creates the job's queues and
 * registry item, uploads the user's scripts, plans shards, launches the members and hands every
 * shard to a shard-feed. The same core runs behind the Lambda handler and in the local runtime
 * (src/runtime/local-runtime.ts loads it as this function's module); only the ports differ.
 * Finishing a job is src/jobs/finish.ts, shared with the job-watch function.
 */
import { ConfigError } from "../../src/errors.ts";
import type { Deps } from "../../src/jobs/deps.ts";
import { RESERVED_ENV, SECRET_ARN_PATTERN, SECRET_NAME_PREFIX, checkJobId, jobKeys, modelKeys, newJobId, parseS3Uri, s3Uri } from "../../src/protocol/names.ts";
import { createJobQueues, deleteJobQueues } from "../../src/jobs/queues.ts";
import { uploadScripts } from "../../src/jobs/job-code.ts";
import { rowToJson, type TableSource } from "../../src/protocol/table-source.ts";
import { allMembers, dataMembers, type JobSpec, type InferenceConfig } from "../../src/protocol/spec.ts";
import { newVersion } from "../../src/protocol/model-metadata.ts";
import { formatOfKey, type TableFormat } from "../../src/codec/table-rows.ts";
import { listKeys, putObject } from "../../src/storage/objects.ts";
import { JobConflictError } from "../../src/registry/errors.ts";
import type { JobRequest } from "../../src/protocol/start-request.ts";
import type { ShardRef } from "../../src/protocol/shard-feed-request.ts";
import type { CoordinatorPorts, StartedJob } from "../../src/jobs/started-job.ts";

/** A member's lease unless the request sets one; parameter-server jobs get the longer one. */
export const DEFAULT_LEASE_MS = 15_000;
export const PS_LEASE_MS = 60_000;

/** Validates what no later stage can repair; every message names the setting and what is allowed. */
export function validateRequest(request: JobRequest): void {
  const { cluster } = request;
  if (!Number.isInteger(cluster.worker) || cluster.worker < 1 || cluster.worker > 64) throw new ConfigError("workerNum", cluster.worker, "an integer from 1 to 64");
  if (!Number.isInteger(cluster.ps) || cluster.ps < 0) throw new ConfigError("psNum", cluster.ps, "a non-negative integer");
  if (cluster.ps > 16) throw new ConfigError("psNum", cluster.ps, "an integer from 0 to 16");
  if (cluster.ps > 0 && (request.mode !== "train" || request.source.kind === "queue")) {
    // A chief coordinates the steps of a fixed dataset per worker (python/serverless_tf/worker/strategy.py):
    // inference and a streaming fit have no steps to hand out.
    throw new ConfigError("psNum", cluster.ps, `0 for ${request.mode === "train" ? "a streaming fit" : "transform"}: parameter servers train on a bounded table only`);
  }
  const envSetting = request.mode === "train" ? "trainEnv" : "inferenceEnv";
  for (const name of Object.keys(request.python.env)) {
    if (RESERVED_ENV.test(name)) throw new ConfigError(envSetting, name, `a variable the runtime does not set itself (not ${RESERVED_ENV}): the table, bucket, queues, credentials and TF_CONFIG are the runtime's`);
  }
  for (const name of Object.keys(request.model?.inference?.python.env ?? {})) {
    if (RESERVED_ENV.test(name)) throw new ConfigError("inferenceEnv", name, `a variable the runtime does not set itself (not ${RESERVED_ENV})`);
  }
  const secretsSetting = request.mode === "train" ? "trainSecrets" : "inferenceSecrets";
  for (const [python, setting] of [[request.python, secretsSetting], ...(request.model?.inference ? [[request.model.inference.python, "inferenceSecrets"] as const] : [])] as const) {
    for (const [name, arn] of Object.entries(python.secrets ?? {})) {
      if (RESERVED_ENV.test(name) || name in python.env) throw new ConfigError(setting, name, `a variable neither the runtime nor the plain environment sets (not ${RESERVED_ENV}, not also in the env)`);
      if (!SECRET_ARN_PATTERN.test(arn)) throw new ConfigError(setting, arn, `the full ARN of a Secrets Manager secret named ${SECRET_NAME_PREFIX}... (arn:aws:secretsmanager:<region>:<account>:secret:${SECRET_NAME_PREFIX}<name>-<6 characters>): job roles may read no other secrets`);
    }
  }
  if (!request.python.scripts.length) throw new ConfigError(`${request.mode === "train" ? "train" : "inference"}Scripts`, request.python.scripts, "at least one Python script");
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(request.python.entry)) throw new ConfigError(`${request.mode === "train" ? "train" : "inference"}Entry`, request.python.entry, "a Python function name");
  if (!request.input.columns.length) throw new ConfigError("selectedCols", [], "at least one input column");
  if (request.mode === "inference" && !request.output?.columns.length) throw new ConfigError("inferenceOutputCols", request.output, "at least one output column for inference");
  if (!Number.isInteger(request.batchSize) || request.batchSize < 1) throw new ConfigError("batchSize", request.batchSize, "a positive integer");
  if (request.source.kind === "queue") {
    if (request.mode !== "train") throw new ConfigError("table", "queue", "a bounded table (rows or S3) for transform; serve queues with the inference function");
    // MultiWorkerMirroredStrategy hangs when workers see different numbers of batches, and an
    // unbounded feed cannot promise equal counts: a streaming fit runs on one worker.
    if (request.cluster.worker !== 1) throw new ConfigError("workerNum", request.cluster.worker, "1 for a streaming fit on a queue table");
    if (!request.model) throw new ConfigError("modelId", null, "a model id: a streaming fit publishes versions of it");
  }
}

/** Plans the shards of a table: one per S3 object, or in-memory rows staged as JSON Lines objects. */
export async function planShards(deps: Deps, jobId: string, bucket: string, source: TableSource, rowsPerShard = 2_000): Promise<ShardRef[]> {
  if (source.kind === "rows") {
    const shards: ShardRef[] = [];
    const count = Math.max(1, Math.ceil(source.rows.length / rowsPerShard));
    await Promise.all(
      Array.from({ length: count }, async (_, index) => {
        const rows = source.rows.slice(index * rowsPerShard, (index + 1) * rowsPerShard);
        const at = { bucket, key: jobKeys.shard(jobId, index) };
        await putObject(deps.clients, at, rows.map(rowToJson).join("\n") + (rows.length ? "\n" : ""), { contentType: "application/x-ndjson" });
        shards[index] = { shardId: `s${String(index).padStart(5, "0")}`, index, uri: s3Uri(at), format: "jsonl" };
      }),
    );
    return shards;
  }
  if (source.kind === "s3") {
    const prefix = parseS3Uri(source.uri, "table uri");
    const objects = (await listKeys(deps.clients, prefix)).filter((o) => !o.key.endsWith("/") && (source.format ?? formatOfKey(o.key)));
    if (!objects.length) throw new ConfigError("table uri", source.uri, "a prefix holding at least one .jsonl, .csv or .tfrecord object");
    return objects.map((o, index) => ({
      shardId: `s${String(index).padStart(5, "0")}`,
      index,
      uri: s3Uri({ bucket: prefix.bucket, key: o.key }),
      format: (source.format ?? formatOfKey(o.key)) as TableFormat,
    }));
  }
  return []; // a queue: rows are forwarded as they arrive, there is nothing to plan
}

export async function startJob(deps: Deps, request: JobRequest, ports: CoordinatorPorts): Promise<StartedJob> {
  validateRequest(request);
  const jobId = checkJobId(request.jobId ?? newJobId(request.mode === "train" ? "fit" : "transform"));
  ports.launcher.checkCapacity?.(jobId, request.workerCapacity);
  const members = dataMembers(request.cluster);
  const queues = await createJobQueues(deps.clients, jobId, members, request.queueSettings);
  try {
    const [scripts, shards, inferenceScripts] = await Promise.all([
      uploadScripts(deps.clients, jobId, request.bucket, request.python.scripts),
      planShards(deps, jobId, request.bucket, request.source, request.rowsPerShard),
      // The model's inference scripts travel with its metadata: the inference function reads them from S3.
      uploadScripts(deps.clients, jobId, request.bucket, request.model?.inference?.python.scripts ?? []),
    ]);
    const inference = request.model?.inference ? { ...request.model.inference, python: { ...request.model.inference.python, scripts: inferenceScripts } } : null;
    const version = newVersion(jobId);
    const spec: JobSpec & { model: (JobSpec["model"] & { inference: InferenceConfig | null }) | null } = {
      version: 1,
      jobId,
      mode: request.mode,
      cluster: request.cluster,
      python: { ...request.python, scripts },
      input: { columns: request.input.columns },
      output: request.output,
      batchSize: request.batchSize,
      remainder: request.remainder,
      bounded: request.source.kind !== "queue",
      queues,
      bucket: request.bucket,
      model: request.model
        ? {
            modelId: request.model.modelId,
            version,
            exportUri: s3Uri({ bucket: request.bucket, key: modelKeys.version(request.model.modelId, version) }),
            versionsUri: s3Uri({ bucket: request.bucket, key: modelKeys.versions(request.model.modelId) }),
            inference,
          }
        : null,
      modelArtifactUri: request.modelArtifactUri ?? null,
      initModelUri: request.initModelUri ?? null,
      checkpoint: request.checkpoint ?? { everySteps: 0, everySeconds: 0 },
      export: request.export ?? { everySteps: 0, everySeconds: 0 },
      // Parameter servers: a chief's TensorFlow calls at the end of fit held the GIL, so its heartbeat
      // thread could not run, for 15 s and more (python/serverless_tf/worker/strategy.py).
      leaseMs: request.leaseMs ?? (request.cluster.ps > 0 ? PS_LEASE_MS : DEFAULT_LEASE_MS),
      ...(request.workerCapacity ? { workerCapacity: request.workerCapacity } : {}),
    };
    const created = await deps.registry.createJob({ jobId, mode: request.mode, spec });
    // createJob accepts the same create twice (an SDK retry); a start request delivered twice
    // finds its job past CREATED and must not launch a second member set for it.
    if (created.state !== "CREATED") throw new JobConflictError(jobId, created.state);
    await Promise.all(
      shards.map((s) => deps.registry.recordShardProgress(jobId, s.shardId, { cursor: 0, seq: 0, done: false, rowsPerMember: {}, messagesPerMember: {} })),
    );
    await deps.registry.transitionJob(jobId, ["CREATED"], "RUNNING");
    const workers = await ports.launcher.launch(spec, allMembers(request.cluster), ports.hooks);
    await Promise.all(shards.map((shard) => ports.dispatchShard({ jobId, shard })));
    if (request.source.kind !== "queue") return { spec, shards, workers };
    if (!ports.attachStream) {
      await workers.stop();
      throw new ConfigError("table", "queue", "a runtime that can forward a queue to a job (the local runtime); this one cannot");
    }
    return { spec, shards, workers, stream: await ports.attachStream(spec, request.source.queueUrl) };
  } catch (e) {
    // A job id already taken: the queues are that job's (creating a queue that exists returns
    // it), so they must stay. A retried start request must not tear down the running job.
    if (!(e instanceof JobConflictError)) await deleteJobQueues(deps.clients, queues);
    throw e;
  }
}

