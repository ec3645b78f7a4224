/** A model's `latest.json`: which version is in force (moved only by the checkpoint stage, functions/checkpoint/publish.ts). */
import type { AwsClients } from "../aws/clients.ts";
import type { LatestPointer } from "../protocol/model-metadata.ts";
import { modelKeys } from "../protocol/names.ts";
import { getJson } from "./objects.ts";

/**
 * @example
 * const pointer = await readLatest(clients, "serverless-tf-artifacts", "digits"); // { modelId, version, metadataUri } or undefined
 */
export async function readLatest(clients: AwsClients, bucket: string, modelId: string): Promise<LatestPointer | undefined> {
  return (await getJson<LatestPointer>(clients, { bucket, key: modelKeys.latest(modelId) }))?.value;
}
