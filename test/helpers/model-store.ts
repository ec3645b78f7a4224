/**
 * What the model-publishing tests share: clients straight to the emulator, the registry, a fresh
 * bucket, and the jobs to delete afterwards. Registers its own `before`/`after` in the calling file.
 * A file's own `before` must `await ready()` first: Node 20 starts root-level `before` hooks
 * without waiting for the one registered earlier.
 */
import { randomUUID } from "node:crypto";
import { after, before } from "node:test";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { createAwsClients, destroyAwsClients, type AwsClients } from "../../src/aws/clients.ts";
import { Registry, ensureRegistryTable, registryTableName } from "../../src/registry/index.ts";

export interface ModelStoreFixture {
  readonly clients: AwsClients;
  readonly registry: Registry;
  readonly bucket: string;
  /** Job ids to delete from the registry after the file's tests. */
  readonly jobs: string[];
  /** Resolves once the table and the bucket exist (the same promise every time). */
  ready(): Promise<void>;
}

export function modelStoreFixture(bucketPrefix: string): ModelStoreFixture {
  const clients = createAwsClients();
  const bucket = `${bucketPrefix}-${randomUUID().slice(0, 8)}`;
  let made: Promise<void> | undefined;
  const ready = () =>
    (made ??= (async () => {
      await ensureRegistryTable(clients, registryTableName());
      await clients.s3.send(new CreateBucketCommand({ Bucket: bucket }));
    })());
  const fixture: ModelStoreFixture = { clients, registry: new Registry(clients, registryTableName()), bucket, jobs: [], ready };
  before(ready);
  after(async () => {
    await Promise.all(fixture.jobs.map((id) => fixture.registry.deleteJob(id)));
    destroyAwsClients(clients);
  });
  return fixture;
}
