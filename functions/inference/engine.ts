/**
 * The inference engine: a long-lived Python process per warm container (`python -m
 * serverless_tf.serve`) that loads a model version once and runs its inference entry, unchanged,
 * on each batch. Requests and answers are JSON lines over stdin/stdout (docs/protocol.md
 * "Inference server"); batches travel as base64 TFRecord frames of tf.Example rows, so the
 * typed coding module is the only conversion on both sides.
 *
 * Why Python rather than an ONNX twin in Node: a TFEstimator model then serves with no
 * conversion step and no user code change, the inference entry (pre/post-processing included)
 * runs as written, and the engine measured ~1 ms of IPC overhead per batch (bench/inference.ts).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { AwsClients } from "../../src/aws/clients.ts";
import { projectPython, projectRoot, pythonChildEnv } from "../../src/workers/paths.ts";
import { EngineError } from "./engine-error.ts";
import { stageVersion, type StagedVersion } from "./model-files.ts";
import type { ModelMetadata } from "../../src/protocol/model-metadata.ts";
import { createDecoder } from "../../src/codec/example.ts";
import type { Row } from "../../src/codec/schema.ts";
import { frameRecords, unframeRecords } from "../../src/codec/tfrecord.ts";
import { ROW_ID_COLUMN } from "../../src/protocol/feed-messages.ts";

/**
 * One engine call's rows, each typed by the model's input columns and carrying its place in the
 * batch as the row id feature (`ROW_ID`), and the same rows as tf.Example records (what encoding
 * them checked against the schema, so a bad row was dead-lettered before the call).
 */
export interface EngineBatch {
  readonly rows: readonly Row[];
  readonly frames: readonly Uint8Array[];
}

/** What the inference core needs from an engine: {@link PythonEngine} (script mode) and OnnxEngine (signature mode, ./onnx-engine.ts). */
export interface InferenceEngine {
  /** Loads `metadata`'s version unless it is the one loaded. */
  ensure(metadata: ModelMetadata): Promise<void>;
  /** Runs the loaded version on a batch; returns one row of output columns per input row, each with its input's `ROW_ID`, in any order. */
  predict(version: string, batch: EngineBatch): Promise<Row[]>;
  close(): Promise<void>;
}

/**
 * What of this process's environment the engine gets: the system's basics and the TensorFlow,
 * Keras and Python settings, never credentials (`AWS_*`: on Lambda, the function role's), table
 * or bucket names: the engine runs the user's inference code, and the function stages every file
 * it needs (./model-files.ts).
 */
export function engineEnvironment(env: Readonly<Record<string, string | undefined>> = process.env): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && (ENGINE_ENV_NAMES.has(name) || /^(TF_|KERAS_|OMP_|LC_)/.test(name))) kept[name] = value;
  }
  return { ...kept, ...pythonChildEnv(env) };
}

const ENGINE_ENV_NAMES = new Set(["PATH", "HOME", "TMPDIR", "LANG", "TZ", "LD_LIBRARY_PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"]);

interface Answer {
  readonly id: number;
  readonly ok: boolean;
  readonly version?: string;
  readonly data?: string;
  readonly error?: string;
  readonly type?: string;
  readonly ms?: number;
}

export interface PythonEngineOptions {
  /** Where a version's files are staged before the engine loads them; default the OS temp folder. */
  readonly filesDir?: string;
  readonly log?: (line: string) => void;
  /** Longest a model load may take (downloading the SavedModel, importing the scripts). */
  readonly loadTimeoutMs?: number;
}

export class PythonEngine implements InferenceEngine {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (a: Answer) => void; reject: (e: Error) => void }>();
  private loadedVersion: string | undefined;
  private decoder: { readonly key: string; readonly decode: ReturnType<typeof createDecoder>["decode"] } | undefined;
  private loading: Promise<void> | undefined;
  private staged: StagedVersion | undefined;
  /** Milliseconds the Python side spent on the last predict (the rest of a round trip is IPC). */
  lastPredictMs = 0;

  constructor(
    private readonly clients: AwsClients,
    private readonly options: PythonEngineOptions = {},
  ) {}

  /** The process id of the running engine (undefined before the first batch or after it exited). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private start(): Promise<void> {
    if (this.ready) return this.ready;
    const child = spawn(projectPython, ["-m", "serverless_tf.serve"], {
      cwd: projectRoot,
      env: engineEnvironment(),
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.child = child;
    const tail: string[] = [];
    createInterface({ input: child.stderr! }).on("line", (line) => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
      this.options.log?.(`[inference engine] ${line}`);
    });
    this.ready = new Promise<void>((resolve, reject) => {
      this.waiting.set(0, { resolve: () => resolve(), reject });
      createInterface({ input: child.stdout! }).on("line", (line) => {
        let answer: Answer;
        try {
          answer = JSON.parse(line) as Answer;
        } catch {
          return this.options.log?.(`[inference engine] ${line}`);
        }
        const w = this.waiting.get(answer.id);
        this.waiting.delete(answer.id);
        w?.resolve(answer);
      });
      const ended = (error: EngineError) => {
        for (const w of this.waiting.values()) w.reject(error);
        this.waiting.clear();
        this.child = undefined;
        this.ready = undefined;
        this.loadedVersion = undefined;
      };
      child.once("exit", (code, signal) => ended(new EngineError(`the inference engine exited with ${signal ?? `code ${code}`}; it is restarted on the next batch.\n${tail.join("\n")}`)));
      // No interpreter at all (the zip signature-inference function has none): say which function serves script mode.
      child.once("error", (e) =>
        ended(new EngineError(`cannot start the Python inference engine ${projectPython} (${e.message}): script-mode models are served by the inference image function; serve this model there, or fit it with setServingMode("signature")`)),
      );
    });
    return this.ready;
  }

  private async request(body: Record<string, unknown>, timeoutMs: number): Promise<Answer> {
    await this.start();
    const id = this.nextId++;
    const answer = await new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new EngineError(`the inference engine did not answer ${String(body.op)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { resolve: (a) => (clearTimeout(timer), resolve(a)), reject: (e) => (clearTimeout(timer), reject(e)) });
      this.child!.stdin!.write(`${JSON.stringify({ ...body, id })}\n`);
    });
    if (!answer.ok) throw new EngineError(`the inference engine failed ${String(body.op)}: ${answer.type}: ${answer.error}`);
    return answer;
  }

  async ensure(metadata: ModelMetadata): Promise<void> {
    while (this.loadedVersion !== metadata.version) {
      if (this.loading) {
        await this.loading.catch(() => undefined);
        continue;
      }
      const inference = metadata.inference;
      if (!inference) throw new EngineError(`model ${metadata.modelId} version ${metadata.version} has no inference config: set inference scripts and output columns on the estimator before fit`);
      this.loading = this.load(metadata, inference);
      try {
        await this.loading;
      } finally {
        this.loading = undefined;
      }
    }
  }

  /** Stages the version's files, has the engine load them, then drops the previous version's files. */
  private async load(metadata: ModelMetadata, inference: NonNullable<ModelMetadata["inference"]>): Promise<void> {
    const files = await stageVersion(this.clients, metadata, this.options.filesDir ?? join(tmpdir(), "stf-serve"));
    const request = {
      op: "load",
      version: metadata.version,
      artifactDir: files.artifactDir,
      scriptFiles: files.scriptFiles,
      entry: inference.python.entry,
      hyperParams: inference.python.hyperParams,
      input: inference.input.columns,
      output: inference.output.columns,
    };
    try {
      await this.request(request, this.options.loadTimeoutMs ?? 120_000);
    } catch (e) {
      await files.remove();
      throw e;
    }
    // The engine holds the model in memory now; the previous version's files are not read again.
    await this.staged?.remove();
    this.staged = files;
    const key = JSON.stringify(inference.output.columns);
    if (this.decoder?.key !== key) {
      const decoder = createDecoder([...inference.output.columns, ROW_ID_COLUMN]);
      this.decoder = { key, decode: (bytes) => decoder.decode(bytes) };
    }
    this.loadedVersion = metadata.version;
  }

  async predict(version: string, batch: EngineBatch): Promise<Row[]> {
    const decode = this.decoder?.decode;
    if (!decode || this.loadedVersion !== version) throw new EngineError(`version ${version} is not loaded (the engine holds ${this.loadedVersion ?? "none"}); the batch is retried`);
    const answer = await this.request({ op: "predict", version, data: Buffer.from(frameRecords(batch.frames)).toString("base64") }, 60_000);
    this.lastPredictMs = answer.ms ?? 0;
    return unframeRecords(new Uint8Array(Buffer.from(answer.data ?? "", "base64"))).map((bytes) => decode(bytes));
  }

  async close(): Promise<void> {
    await this.staged?.remove();
    this.staged = undefined;
    const child = this.child;
    if (!child) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.stdin!.end();
      setTimeout(() => child.kill("SIGKILL"), 5_000).unref();
    });
  }
}
