/** A complete job spec for tests that write a job item themselves (what the coordinator would write), with the fields a test cares about over defaults. */
import type { JobSpec } from "../../src/protocol/spec.ts";

export function jobSpec(fields: Partial<JobSpec> & Pick<JobSpec, "jobId" | "bucket">): JobSpec {
  return {
    version: 1,
    mode: "train",
    cluster: { worker: 1, ps: 0 },
    python: { scripts: [], entry: "train", hyperParams: {}, env: {} },
    input: { columns: [{ name: "x", dtype: "FLOAT32", shape: "scalar" }] },
    output: null,
    batchSize: 8,
    remainder: { policy: "drop" },
    bounded: true,
    queues: { feed: {}, output: "", dlq: "" },
    model: null,
    modelArtifactUri: null,
    initModelUri: null,
    checkpoint: { everySteps: 0, everySeconds: 0 },
    leaseMs: 60_000,
    ...fields,
  };
}
