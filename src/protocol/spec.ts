/**
 * The job spec: what the coordinator writes into the registry and every worker reads.
 * Its JSON shape is fixed by docs/protocol.md; both languages parse it.
 */
import type { Column } from "../codec/schema.ts";
import type { MemberKey } from "./names.ts";

export type JobMode = "train" | "inference";

export type RemainderPolicy = { readonly policy: "drop" } | { readonly policy: "pad" } | { readonly policy: "flush"; readonly afterMs: number };

export interface PythonConfig {
  /** s3:// URIs of the user's scripts; the first holds the entry function. */
  readonly scripts: readonly string[];
  readonly entry: string;
  readonly hyperParams: Readonly<Record<string, unknown>>;
  readonly env: Readonly<Record<string, string>>;
}

export interface ClusterShape {
  readonly worker: number;
  readonly ps: number;
}

export interface JobQueues {
  readonly feed: Readonly<Record<MemberKey, string>>;
  readonly output: string;
  readonly dlq: string;
}

export interface JobSpec {
  readonly version: 1;
  readonly jobId: string;
  readonly mode: JobMode;
  readonly cluster: ClusterShape;
  readonly python: PythonConfig;
  readonly input: { readonly columns: readonly Column[] };
  readonly output: { readonly columns: readonly Column[] } | null;
  readonly batchSize: number;
  readonly remainder: RemainderPolicy;
  readonly bounded: boolean;
  readonly queues: JobQueues;
  readonly bucket: string;
  /** Training: where the worker exports the model; an unbounded job exports each version under `versionsUri`. */
  readonly model: { readonly modelId: string; readonly version: string; readonly exportUri: string; readonly versionsUri?: string } | null;
  /** Inference: the SavedModel the workers load. */
  readonly modelArtifactUri: string | null;
  /** Warm start: metadata URI of a trained model whose weights training starts from. */
  readonly initModelUri: string | null;
  readonly checkpoint: { readonly everySteps: number; readonly everySeconds: number };
  /** Unbounded training: a new model version every this many steps or seconds (0: off). */
  readonly export?: { readonly everySteps: number; readonly everySeconds: number };
  readonly leaseMs: number;
}

/** Members that receive data: the workers, never the parameter servers. */
export function dataMembers(cluster: ClusterShape): MemberKey[] {
  return Array.from({ length: cluster.worker }, (_, i) => `worker-${i}` as MemberKey);
}

export function allMembers(cluster: ClusterShape): { role: "worker" | "ps"; index: number }[] {
  return [
    ...Array.from({ length: cluster.worker }, (_, index) => ({ role: "worker" as const, index })),
    ...Array.from({ length: cluster.ps }, (_, index) => ({ role: "ps" as const, index })),
  ];
}
