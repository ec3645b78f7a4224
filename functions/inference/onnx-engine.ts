/**
 * The signature-mode engine: the version's `model.onnx` (its serving signature, exported by the
 * chief, python/serverless_tf/worker/export.py) run by ONNX Runtime inside this process. No
 * Python, no pipe: a cold start is a download and a session, tens of milliseconds.
 *
 * The binding is loaded with a CommonJS require, not bundled: on Lambda it comes from the
 * onnxruntime layer (`/opt/nodejs/node_modules`, on NODE_PATH, which ES module resolution
 * ignores), locally from node_modules. A new version gets a new session; the old one is released
 * once no batch runs on it (hot reload, no restart).
 */
import { createRequire } from "node:module";
import type * as Ort from "onnxruntime-node";
import type { AwsClients } from "../../src/aws/clients.ts";
import type { Column, Dtype, Row } from "../../src/codec/schema.ts";
import type { ModelMetadata, OnnxSignature } from "../../src/protocol/model-metadata.ts";
import { ROW_ID } from "../../src/protocol/feed-messages.ts";
import { parseS3Uri } from "../../src/protocol/names.ts";
import { getObject } from "../../src/storage/objects.ts";
import type { EngineBatch, InferenceEngine } from "./engine.ts";
import { EngineError } from "./engine-error.ts";

type Binding = typeof Ort;

let binding: Binding | undefined;

/** The ONNX Runtime binding, loaded on first use (a script-mode function never loads it). */
export function onnxRuntime(): Binding {
  if (!binding) {
    try {
      binding = createRequire(import.meta.url)("onnxruntime-node") as Binding;
    } catch (e) {
      throw new EngineError(
        `ONNX Runtime is not installed here (${(e as Error).message.split("\n")[0]}): signature-mode models are served by the signature-inference function, which has the onnxruntime layer; locally, run npm install.`,
      );
    }
  }
  return binding;
}

const TENSOR_TYPES: Partial<Record<Dtype, Ort.Tensor.Type>> = { FLOAT32: "float32", FLOAT64: "float64", INT32: "int32", INT64: "int64" };

const widthOf = (c: Column): number => (c.shape === "scalar" ? 1 : c.shape === "var" ? Number.NaN : c.shape.fixed);

interface Loaded {
  readonly version: string;
  readonly session: Ort.InferenceSession;
  readonly signature: OnnxSignature;
}

export class OnnxEngine implements InferenceEngine {
  private loaded: Loaded | undefined;
  private loading: Promise<Loaded> | undefined;
  /** Milliseconds of the last session run. */
  lastPredictMs = 0;

  constructor(private readonly clients: AwsClients) {}

  async ensure(metadata: ModelMetadata): Promise<void> {
    while (this.loaded?.version !== metadata.version) {
      if (this.loading) {
        await this.loading.catch(() => undefined);
        continue;
      }
      this.loading = this.load(metadata);
      try {
        const previous = this.loaded;
        this.loaded = await this.loading;
        // A batch still running on the previous session holds its own reference; release only frees native memory after it.
        if (previous) setTimeout(() => void previous.session.release().catch(() => undefined), 60_000).unref();
      } finally {
        this.loading = undefined;
      }
    }
  }

  private async load(metadata: ModelMetadata): Promise<Loaded> {
    const serving = metadata.serving;
    if (serving?.mode !== "signature") {
      throw new EngineError(`model ${metadata.modelId} version ${metadata.version} has no ONNX serving signature (it was exported in script mode): fit it with setServingMode("signature"), or serve it in script mode.`);
    }
    const object = await getObject(this.clients, parseS3Uri(serving.onnxUri, "metadata serving.onnxUri"));
    if (!object) throw new EngineError(`model ${metadata.modelId} version ${metadata.version}: ${serving.onnxUri} is missing. Re-export the model.`);
    const session = await onnxRuntime().InferenceSession.create(object.body);
    for (const c of serving.inputs) if (!session.inputNames.includes(c.name)) throw new EngineError(`model.onnx of ${metadata.modelId} version ${metadata.version} has no input ${c.name} (it has ${session.inputNames.join(", ")})`);
    for (const c of serving.outputs) if (!session.outputNames.includes(c.name)) throw new EngineError(`model.onnx of ${metadata.modelId} version ${metadata.version} has no output ${c.name} (it has ${session.outputNames.join(", ")})`);
    return { version: metadata.version, session, signature: serving };
  }

  /** Runs the typed rows as one session run: the tf.Example records are not needed here. */
  async predict(version: string, batch: EngineBatch): Promise<Row[]> {
    const loaded = this.loaded;
    if (loaded?.version !== version) throw new EngineError(`version ${version} is not loaded (the engine holds ${loaded?.version ?? "none"}); the batch is retried`);
    const ort = onnxRuntime();
    const rows = batch.rows;
    const feeds: Record<string, Ort.Tensor> = {};
    for (const c of loaded.signature.inputs) feeds[c.name] = inputTensor(ort, c, rows);
    const started = performance.now();
    const out = await loaded.session.run(feeds);
    this.lastPredictMs = performance.now() - started;
    return rows.map((row, i) => {
      const values: Record<string, unknown> = { [ROW_ID]: row[ROW_ID] };
      for (const c of loaded.signature.outputs) values[c.name] = valueAt(out[c.name]!, c, i, rows.length);
      return values;
    });
  }

  async close(): Promise<void> {
    await this.loaded?.session.release();
    this.loaded = undefined;
  }
}

/** One column of every row as a `[rows]` (scalar) or `[rows, n]` tensor. */
function inputTensor(ort: Binding, column: Column, rows: readonly Row[]): Ort.Tensor {
  const type = TENSOR_TYPES[column.dtype];
  const width = widthOf(column);
  if (!type || !Number.isInteger(width)) throw new EngineError(`column ${column.name} (${column.dtype}, ${JSON.stringify(column.shape)}) cannot be an ONNX input`);
  const n = rows.length;
  const data = type === "int64" ? new BigInt64Array(n * width) : type === "int32" ? new Int32Array(n * width) : type === "float64" ? new Float64Array(n * width) : new Float32Array(n * width);
  for (let i = 0; i < n; i++) {
    const v = rows[i]![column.name];
    if (column.shape === "scalar") (data as unknown as unknown[])[i] = v;
    else (data as { set(values: ArrayLike<unknown>, offset: number): void }).set(v as ArrayLike<unknown>, i * width);
  }
  return new ort.Tensor(type, data, column.shape === "scalar" ? [n] : [n, width]);
}

/** Row `i`'s value of an output tensor, typed as its column is. */
function valueAt(tensor: Ort.Tensor, column: Column, i: number, rows: number): unknown {
  const width = widthOf(column);
  if (tensor.dims[0] !== rows || tensor.size !== rows * width) {
    throw new EngineError(`output ${column.name} has shape [${tensor.dims.join(", ")}] for ${rows} rows; column ${column.name} is ${JSON.stringify(column.shape)}`);
  }
  const data = tensor.data as ArrayLike<number | bigint>;
  const cast = (x: number | bigint) => (column.dtype === "INT64" ? BigInt(x) : Number(x));
  if (column.shape === "scalar") return cast(data[i]!);
  return Array.from({ length: width }, (_, j) => cast(data[i * width + j]!));
}
