/**
 * Names of everything a job owns. A job is addressed by its id everywhere, so two jobs
 * (two fits in one pipeline, two pipelines in one process) never share a queue or a key.
 */
import { randomBytes } from "node:crypto";
import { ConfigError } from "../errors.ts";

export const JOB_ID_PATTERN = /^[a-z0-9][a-z0-9-]{2,39}$/;
/** A model id: its versions live under `models/<modelId>/`. */
export const MODEL_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * A member's role: a worker (trains on its own feed), a parameter server (holds variables), or, in
 * parameter-server training only, the chief (coordinates: runs the training entry, gets no feed).
 */
export const ROLES = ["worker", "ps", "chief"] as const;
export type Role = (typeof ROLES)[number];

/** One member of a job's cluster. */
export interface MemberRef {
  readonly role: Role;
  readonly index: number;
}

/** `worker-0`, `ps-1`: the key of a member in feeds, counts and queue names. */
export type MemberKey = `${Role}-${number}`;

export function memberKey(role: Role, index: number): MemberKey;
export function memberKey(member: MemberRef): MemberKey;
export function memberKey(roleOrMember: Role | MemberRef, index?: number): MemberKey {
  return typeof roleOrMember === "string" ? `${roleOrMember}-${index!}` : `${roleOrMember.role}-${roleOrMember.index}`;
}

/** A fresh job id such as `fit-3f9a2c1b04`. */
export function newJobId(prefix: "fit" | "transform" | "stream" = "fit"): string {
  return `${prefix}-${randomBytes(5).toString("hex")}`;
}

export function checkJobId(jobId: string): string {
  if (!JOB_ID_PATTERN.test(jobId)) throw new ConfigError("jobId", jobId, `a string matching ${JOB_ID_PATTERN}`);
  return jobId;
}

export const queueName = {
  feed: (jobId: string, member: MemberKey) => `stf-${jobId}-feed-${member}`,
  output: (jobId: string) => `stf-${jobId}-output`,
  dlq: (jobId: string) => `stf-${jobId}-dlq`,
};

/**
 * A served model's queues: `stf-serve-<modelId>-input`, `-output` and `-dlq` (at most 80
 * characters, SQS's limit, for the longest model id). The inference function learns which model
 * it serves, and where its results and dead letters go, from the input queue's name.
 */
export const servedQueueName = {
  input: (modelId: string) => `stf-serve-${modelId}-input`,
  output: (modelId: string) => `stf-serve-${modelId}-output`,
  dlq: (modelId: string) => `stf-serve-${modelId}-dlq`,
};

/**
 * Environment names user code may not set (python.env): the runtime's own settings (table, bucket,
 * queues), AWS credentials and endpoints, and what the worker sets itself (TF_CONFIG, the paths).
 */
export const RESERVED_ENV = /^(SERVERLESS_TF_|AWS_)|^(TF_CONFIG|PYTHONPATH|PATH|HOME)$/;

/**
 * Secrets user code gets as environment variables (`python.secrets`, name -> ARN) live in Secrets
 * Manager under this name prefix: the worker boundary lets job roles read those and no others, so
 * a start request cannot hand a job any secret of the account.
 */
export const SECRET_NAME_PREFIX = "serverless-tf/";

/** A Secrets Manager secret's full ARN (with its 6-character suffix) under {@link SECRET_NAME_PREFIX}. */
export const SECRET_ARN_PATTERN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:serverless-tf\/[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/;

/**
 * A streaming fit's source queue on a deployed stack is named `stf-stream-<anything>`: the name the
 * stack lets its stream-feed function consume (on the local runtime any queue will do).
 */
export const STREAM_SOURCE_QUEUE_PREFIX = "stf-stream-";

/** The model a served input queue belongs to, from its name or ARN; undefined for any other queue. */
export function servedModelOfQueue(nameOrArn: string): string | undefined {
  const name = nameOrArn.slice(nameOrArn.lastIndexOf(":") + 1);
  const m = /^stf-serve-(.+)-input$/.exec(name);
  return m && MODEL_ID_PATTERN.test(m[1]!) ? m[1] : undefined;
}

export const jobKeys = {
  prefix: (jobId: string) => `jobs/${jobId}/`,
  code: (jobId: string, fileName: string) => `jobs/${jobId}/code/${fileName}`,
  shard: (jobId: string, index: number) => `jobs/${jobId}/shards/part-${String(index).padStart(5, "0")}.jsonl`,
  /** Saved output of an inference job: one part per batch of output messages, named by its first message id. */
  output: (jobId: string) => `jobs/${jobId}/output/`,
  outputPart: (jobId: string, firstMessageId: string) => `jobs/${jobId}/output/part-${firstMessageId}.json`,
};

export const modelKeys = {
  versions: (modelId: string) => `models/${modelId}/versions/`,
  version: (modelId: string, version: string) => `models/${modelId}/versions/${version}/`,
  latest: (modelId: string) => `models/${modelId}/latest.json`,
};

export interface S3Location {
  readonly bucket: string;
  readonly key: string;
}

export function parseS3Uri(uri: string, setting = "uri"): S3Location {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.*)$/.exec(uri);
  if (!match) throw new ConfigError(setting, uri, "an S3 URI such as s3://bucket/prefix/");
  return { bucket: match[1]!, key: match[2]! };
}

export function s3Uri(location: S3Location): string {
  return `s3://${location.bucket}/${location.key}`;
}
