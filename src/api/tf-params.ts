/** The params of `TFEstimator` and `TFModel`, grouped as the seed report had them. */
import { ConfigError } from "../errors.ts";
import { defineParam, validators, type Param } from "./params.ts";
import { MODEL_ID_PATTERN } from "../protocol/names.ts";
import { SERVING_MODES, WORKER_CAPACITIES, isWorkerCapacity, type ServingMode, type WorkerCapacity } from "../protocol/spec.ts";

export type RemainderParam = "drop" | "pad" | { readonly flushAfterMs: number };

const remainder = (v: unknown, name: string): RemainderParam => {
  if (v === "drop" || v === "pad") return v;
  if (typeof v === "object" && v !== null && Number.isSafeInteger((v as { flushAfterMs?: unknown }).flushAfterMs) && (v as { flushAfterMs: number }).flushAfterMs >= 0) {
    return { flushAfterMs: (v as { flushAfterMs: number }).flushAfterMs };
  }
  throw new ConfigError(name, v, '"drop", "pad" or {"flushAfterMs": n}');
};

export const ClusterParams = {
  workerNum: defineParam("workerNum", "Number of TensorFlow workers.", 1, validators.int(1, 64)),
  workerCapacity: defineParam<WorkerCapacity | null>(
    "workerCapacity",
    'What the workers run on in a deployed stack: "fargate", "fargate-spot" (reclaimable with two minutes\' notice: a lost member, which the job survives) or "gpu" (the stack\'s gpuWorkers instances); null: the stack\'s workerCapacity.',
    null,
    (v, name) => {
      if (v === null || isWorkerCapacity(v)) return v as WorkerCapacity | null;
      throw new ConfigError(name, v, `${WORKER_CAPACITIES.map((c) => `"${c}"`).join(", ")} or null`);
    },
  ),
  psNum: defineParam("psNum", "Number of parameter servers (0: workers synchronise with MultiWorkerMirroredStrategy).", 0, validators.int(0, 16)),
};

export const TrainParams = {
  trainScripts: defineParam("trainScripts", "Python scripts for training; the first holds the entry function.", [] as string[], validators.strings()),
  trainEntry: defineParam("trainEntry", "Name of the training entry function, called with the worker context.", "train", validators.string(/^[A-Za-z_]\w*$/, "a Python function name")),
  trainHyperParams: defineParam("trainHyperParams", "Hyper-parameters handed to the training function (ctx.hyper_params).", {} as Record<string, unknown>, validators.jsonObject()),
  trainEnv: defineParam("trainEnv", "Environment variables for the training processes.", {} as Record<string, string>, validators.stringMap()),
  trainSecrets: defineParam("trainSecrets", "Environment variables for the training processes from Secrets Manager: name -> secret ARN under serverless-tf/ (resolved inside the worker; only the ARN is stored).", {} as Record<string, string>, validators.stringMap()),
  trainSelectedCols: defineParam("trainSelectedCols", "Columns the training workers receive.", [] as string[], validators.strings()),
};

export const InferenceParams = {
  inferenceScripts: defineParam("inferenceScripts", "Python scripts for inference; the first holds the entry function.", [] as string[], validators.strings()),
  inferenceEntry: defineParam("inferenceEntry", "Name of the inference entry function.", "predict", validators.string(/^[A-Za-z_]\w*$/, "a Python function name")),
  inferenceHyperParams: defineParam("inferenceHyperParams", "Hyper-parameters handed to the inference function.", {} as Record<string, unknown>, validators.jsonObject()),
  inferenceEnv: defineParam("inferenceEnv", "Environment variables for the inference processes.", {} as Record<string, string>, validators.stringMap()),
  inferenceSecrets: defineParam("inferenceSecrets", "Environment variables for transform's inference workers from Secrets Manager: name -> secret ARN under serverless-tf/ (served models get none: their engine runs without credentials).", {} as Record<string, string>, validators.stringMap()),
  inferenceSelectedCols: defineParam("inferenceSelectedCols", "Columns the inference workers receive.", [] as string[], validators.strings()),
  inferenceOutputCols: defineParam("inferenceOutputCols", "Columns the inference function writes.", [] as string[], validators.strings()),
  inferenceOutputTypes: defineParam("inferenceOutputTypes", "Types of the output columns: FLOAT32, INT64, FLOAT32[10], STRING[] ...", [] as string[], validators.strings()),
  servingMode: defineParam<ServingMode | null>(
    "servingMode",
    'How a served model runs: "script" (the inference entry in Python) or "signature" (the exported serving signature as ONNX, in the Node function); null: "script" when inference scripts are set, else "signature".',
    null,
    (v, name) => {
      if (v === null || (SERVING_MODES as readonly unknown[]).includes(v)) return v as ServingMode | null;
      throw new ConfigError(name, v, '"script", "signature" or null');
    },
  ),
};

export const FeedParams = {
  batchSize: defineParam("batchSize", "Rows per batch on each worker.", 32, validators.int(1, 1_000_000)),
  remainder: defineParam<RemainderParam>("remainder", 'What a short last batch becomes: "drop", "pad" (masked) or {flushAfterMs} (sent short).', "pad", remainder),
  inferenceWorkerNum: defineParam("inferenceWorkerNum", "Number of inference workers for transform.", 1, validators.int(1, 64)),
};

export const ModelParams = {
  modelId: defineParam("modelId", "Id under which fitted versions are published (models/<modelId>/).", "model", validators.string(MODEL_ID_PATTERN, "lowercase letters, digits and dashes")),
  initModelUri: defineParam("initModelUri", "Metadata URI of a trained model to start from (warm start).", null as string | null, validators.optionalString(/^s3:\/\//, "an s3:// URI or null")),
  checkpointEverySteps: defineParam("checkpointEverySteps", "Checkpoint every this many steps (0: never).", 0, validators.int(0)),
  timeoutMs: defineParam("timeoutMs", "Longest a fit or transform may take before it fails.", 30 * 60_000, validators.int(1_000)),
  exportEverySteps: defineParam("exportEverySteps", "Streaming fit (queue table): publish a new model version every this many steps (0: off).", 0, validators.int(0)),
  exportEverySeconds: defineParam("exportEverySeconds", "Streaming fit (queue table): publish a new model version every this many seconds (0: off).", 0, validators.int(0)),
  maxWorkerRestarts: defineParam("maxWorkerRestarts", "Restarts of the whole worker set from the last checkpoint when a worker is lost (killed, no heartbeat); 0: fail at once.", 2, validators.int(0, 100)),
  progressTimeoutMs: defineParam("progressTimeoutMs", "Fail a job whose worker makes no progress (steps, rows consumed) for this long; 0: never.", 10 * 60_000, validators.int(0)),
};

export const ESTIMATOR_PARAMS: readonly Param<unknown>[] = [
  ...Object.values(ClusterParams),
  ...Object.values(TrainParams),
  ...Object.values(InferenceParams),
  ...Object.values(FeedParams),
  ...Object.values(ModelParams),
] as Param<unknown>[];
