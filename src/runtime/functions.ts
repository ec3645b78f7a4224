/**
 * What the local runtime asks of each function: the factories a function's module exports, so
 * the runtime can build it from explicit dependencies, as Lambda builds it from its environment.
 *
 * The runtime loads the modules by the path in {@link FUNCTION_MODULES} at run time (the way
 * Lambda loads a handler from its bundle); nothing in src/ imports a function. The functions are
 * built on the library, never the other way round; each module's exports are checked against
 * these types where they are declared (`satisfies` in functions/<name>/handler.ts).
 */
import { dirname, extname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import type { Deps, FunctionDeps } from "../jobs/deps.ts";
import type { CoordinatorPorts, StartedJob } from "../jobs/started-job.ts";
import type { JobSpec } from "../protocol/spec.ts";
import type { JobRequest } from "../protocol/start-request.ts";
import type { TableFormat } from "../codec/table-rows.ts";
import type { Column } from "../codec/schema.ts";

/** A Lambda handler for an SQS event source mapping with partial batch responses. */
export type SqsHandler = (event: SQSEvent, context?: Context) => Promise<SQSBatchResponse>;

/** A fit a new data object asks for (functions/coordinator/fit-trigger.ts): the estimator's params as JSON, already validated. */
export interface TriggeredFit {
  readonly jobId: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly table: { readonly uri: string; readonly columns: readonly Column[]; readonly format: TableFormat };
}

/** Starts a triggered fit and resolves once it is registered (rejects with JobConflictError if the id is taken). */
export type StartFit = (fit: TriggeredFit) => Promise<void>;

/** The settings of one served model. */
export interface InferenceSettings {
  readonly bucket: string;
  readonly modelId: string;
  readonly outputQueueUrl: string;
  readonly dlqUrl: string;
  /** How often `latest.json` is re-checked (HeadObject), in milliseconds. */
  readonly recheckMs: number;
  /** The registry table, which holds the idempotency records (one per served row id). */
  readonly tableName: string;
  /** How long a claim on a row holds before another handler may take it over; default the inference function's timeout plus 30 s (functions/inference/idempotency.ts). */
  readonly claimLockMs?: number;
}

/** Counts over every batch a served model handled, plus redelivered records (SQS receive count > 1). */
export interface ServiceTotals {
  results: number;
  rejected: number;
  retried: number;
  duplicates: number;
  redelivered: number;
  /** Milliseconds spent per stage of a batch, over every batch: parse, model (version check, engine load), encode, claim, engine, decode, send, complete. */
  stageMs: Record<string, number>;
}

/** One served model inside the inference function: its handler, its counts, its engine. */
export interface InferenceFunction {
  readonly handle: SqsHandler;
  readonly totals: ServiceTotals;
  /** The engine that runs the model (a process for the Python engine): for tests that watch it. */
  readonly engine: unknown;
  close(): Promise<void>;
}

export interface FunctionFactories {
  readonly coordinator: {
    /** The coordinator's start, as its `start` action runs it. */
    startJob(deps: Deps, request: JobRequest, ports: CoordinatorPorts): Promise<StartedJob>;
    /** The coordinator's handler for the fit-triggers queue, with the fit's start given. */
    createFitTriggerHandler(deps: Deps, start: StartFit, log?: (line: string) => void): SqsHandler;
  };
  readonly "shard-feed": { createShardFeedHandler(deps: FunctionDeps, log?: (line: string) => void): SqsHandler };
  readonly checkpoint: { createCheckpointHandler(deps: Deps, log?: (line: string) => void): SqsHandler };
  readonly inference: {
    createInferenceFunction(deps: Deps, settings: InferenceSettings, log?: (line: string) => void): InferenceFunction;
  };
  /** Not a Lambda function of the stack yet: the local runtime forwards a queue table's rows to a streaming job with it. */
  readonly "stream-feed": { createStreamFeedHandler(deps: Deps, spec: JobSpec, log?: (line: string) => void): SqsHandler };
}

export type LocalFunctionName = keyof FunctionFactories;

/** Each function's module, relative to the functions folder, without its extension. */
export const FUNCTION_MODULES: Readonly<Record<LocalFunctionName, string>> = {
  coordinator: "coordinator/handler",
  "shard-feed": "shard-feed/handler",
  checkpoint: "checkpoint/handler",
  inference: "inference/handler",
  "stream-feed": "stream-feed/stream-feed",
};

/**
 * The functions folder beside this module's own tree: `functions/` of a checkout (TypeScript,
 * run through tsx) or of the installed package's compiled tree (`dist/lib/functions/`, `.js`).
 */
const here = fileURLToPath(import.meta.url);
const FUNCTIONS_DIR = join(dirname(here), "..", "..", "functions");
const EXTENSION = extname(here);

/**
 * Loads one function's factories.
 *
 * @example
 * const { createCheckpointHandler } = await loadFunction("checkpoint");
 */
export async function loadFunction<N extends LocalFunctionName>(name: N, functionsDir = FUNCTIONS_DIR): Promise<FunctionFactories[N]> {
  return (await import(pathToFileURL(join(functionsDir, FUNCTION_MODULES[name] + EXTENSION)).href)) as FunctionFactories[N];
}
