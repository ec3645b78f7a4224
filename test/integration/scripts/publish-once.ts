/**
 * A publisher process: publishes one export as the checkpoint stage does, then exits.
 *
 * `node --import tsx test/integration/scripts/publish-once.ts s3://<bucket>/<prefix>export.json`
 * prints the published model metadata as one JSON line and exits 0. The AWS endpoint, region and
 * registry table come from the environment, so a test can point it at a holding proxy
 * (test/helpers/holding-proxy.ts) and kill it between two of its writes.
 */
import { createAwsClients, destroyAwsClients } from "../../../src/aws/clients.ts";
import { publishExport } from "../../../functions/checkpoint/publish.ts";
import { parseS3Uri } from "../../../src/protocol/names.ts";
import { Registry, registryTableName } from "../../../src/registry/index.ts";

const [uri, ...extra] = process.argv.slice(2);
if (!uri || extra.length) {
  console.error(`usage: publish-once.ts s3://<bucket>/<prefix>export.json. Received: ${JSON.stringify(process.argv.slice(2))}`);
  process.exit(2);
}
const manifestAt = parseS3Uri(uri, "export manifest");
const clients = createAwsClients();
try {
  const published = await publishExport({ clients, registry: new Registry(clients, registryTableName()) }, manifestAt);
  console.log(JSON.stringify(published));
} finally {
  destroyAwsClients(clients);
}
