/**
 * What the model-publishing tests share: clients straight to the emulator, the registry, a fresh
 * bucket, and the jobs to delete afterwards. Registers its own `before`/`after` in the calling file.
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
}

export function modelStoreFixture(bucketPrefix: string): ModelStoreFixture {
  const clients = createAwsClients();
  const fixture: ModelStoreFixture = { clients, registry: new Registry(clients, registryTableName()), bucket: `${bucketPrefix}-${randomUUID().slice(0, 8)}`, jobs: [] };
  before(async () => {
    await ensureRegistryTable(clients, registryTableName());
    await clients.s3.send(new CreateBucketCommand({ Bucket: fixture.bucket }));
  });
  after(async () => {
    await Promise.all(fixture.jobs.map((id) => fixture.registry.deleteJob(id)));
    destroyAwsClients(clients);
  });
  return fixture;
}
