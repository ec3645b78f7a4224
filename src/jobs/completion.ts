/**
 * When a job's work is complete, for the watch (locally and on AWS): a training job when every
 * member is DONE and the checkpoint stage has published the model's metadata; a bounded
 * inference job on AWS when every member is DONE (locally the output collector decides, since it
 * also waits for the rows).
 */

import { checkModelMetadata, type ModelMetadata, EXPORT_MANIFEST, METADATA_OBJECT } from "../protocol/model-metadata.ts";
import type { MemberRecord } from "../registry/types.ts";
import { getJson, headObject } from "../storage/objects.ts";
import type { Deps } from "./deps.ts";
import { parseS3Uri } from "../protocol/names.ts";
import { allMembers, type JobSpec } from "../protocol/spec.ts";
import { COMPLETE, PENDING, type Completion } from "./watch-round.ts";

/** Every member DONE; with parameter servers, the chief DONE (the others only serve it, and a lost worker may never come back). */
const allDone = (spec: Pick<JobSpec, "cluster">, members: readonly MemberRecord[]) =>
  spec.cluster.ps > 0
    ? members.some((m) => m.role === "chief" && m.status === "DONE")
    : members.length === allMembers(spec.cluster).length && members.every((m) => m.status === "DONE");

/**
 * @example
 * const { completion, model } = await trainCompletion(deps, spec, await deps.registry.members(spec.jobId));
 */
export async function trainCompletion(deps: Deps, spec: Pick<JobSpec, "cluster" | "model" | "python">, members: readonly MemberRecord[]): Promise<{ readonly completion: Completion; readonly model: ModelMetadata | null }> {
  if (!allDone(spec, members)) return { completion: PENDING, model: null };
  if (!spec.model) return { completion: COMPLETE, model: null };
  const published = await getJson<unknown>(deps.clients, parseS3Uri(`${spec.model.exportUri}${METADATA_OBJECT}`));
  if (published) return { completion: COMPLETE, model: checkModelMetadata(published.value, spec.model.exportUri) };
  if (!(await headObject(deps.clients, parseS3Uri(`${spec.model.exportUri}${EXPORT_MANIFEST}`)))) {
    // Every member is DONE and the chief wrote no export.json (it does so before it returns): no model will come.
    return { completion: { kind: "failed", reason: `the training entry ${spec.python.entry}(ctx) returned without calling ctx.export(model), so there is no model to publish` }, model: null };
  }
  return { completion: PENDING, model: null }; // exported; the checkpoint stage has not published it yet
}

/** Completion of a job as the job-watch stage sees it: no output collector there. */
export async function jobCompletion(deps: Deps, spec: JobSpec, members: readonly MemberRecord[]): Promise<Completion> {
  // A streaming fit ends when its worker has trained on what it was sent after a stop and exported
  // a last version (which the checkpoint stage publishes as any other); there is no one export to wait for.
  if (spec.mode === "train" && spec.bounded) return (await trainCompletion(deps, spec, members)).completion;
  return allDone(spec, members) ? COMPLETE : PENDING;
}
