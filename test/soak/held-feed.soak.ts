/**
 * Soak: a feed message held through a 10-minute training step is neither delivered again nor
 * dead-lettered. The queues are the ones the coordinator makes (createJobQueues with the default
 * settings: 60 s visibility, maxReceiveCount 5), so without the worker's keeper the message
 * would come back every minute and reach the DLQ on its fifth receive. Hold time: SOAK_HOLD_SECONDS.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { it } from "node:test";
import { createAwsClients, destroyAwsClients } from "../../src/aws/clients.ts";
import { createJobQueues, deleteJobQueues } from "../../src/jobs/queues.ts";
import { DEFAULT_QUEUE_SETTINGS } from "../../src/protocol/start-request.ts";
import { projectPython, projectRoot, pythonChildEnv } from "../../src/workers/paths.ts";
import { recordSoakFigures } from "./figures.ts";

const HOLD_SECONDS = Number(process.env.SOAK_HOLD_SECONDS ?? 600);

it(`keeps a held feed message hidden through a ${HOLD_SECONDS} s step on the shipped queue settings`, { timeout: (HOLD_SECONDS + 300) * 1000 }, () => {
  const clients = createAwsClients();
  return (async () => {
    const queues = await createJobQueues(clients, "fit-held00000", ["worker-0"]);
    try {
      const r = spawnSync(projectPython, [join(projectRoot, "test/soak/scripts/hold_feed.py"), queues.feed["worker-0"]!, queues.dlq, String(HOLD_SECONDS)], {
        env: { ...process.env, ...pythonChildEnv() },
        encoding: "utf8",
        timeout: (HOLD_SECONDS + 240) * 1000,
      });
      assert.equal(r.status, 0, r.stderr);
      const f = JSON.parse(r.stdout.trim().split("\n").pop()!) as { heldSeconds: number; batches: number[]; cameBack: number; dlq: number; kept: number };
      recordSoakFigures("held-feed", { ...f, visibilityTimeoutSeconds: DEFAULT_QUEUE_SETTINGS.visibilityTimeoutSeconds, maxReceiveCount: DEFAULT_QUEUE_SETTINGS.maxReceiveCount });
      assert.ok(f.heldSeconds >= HOLD_SECONDS, `held ${f.heldSeconds} s`);
      assert.deepEqual([f.batches, f.cameBack, f.dlq], [[4, 4], 0, 0], "both batches once, the held message never delivered again, nothing dead-lettered");
      assert.ok(f.kept >= Math.floor(HOLD_SECONDS / 20) - 1, `re-hidden ${f.kept} times`);
    } finally {
      await deleteJobQueues(clients, queues, { includeDlq: true });
      destroyAwsClients(clients);
    }
  })();
});
