/** Soak, issue #8 item 3: 10,000 malformed rows of 10 kinds mixed with 2,000 good ones. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { POISON_EXTRA_INPUTS, runPoison, serveScaleModel } from "../helpers/inference-load.ts";
import { recordSoakFigures } from "./figures.ts";

const BAD = Number(process.env.SOAK_POISON ?? 10_000);
const GOOD = Math.round(BAD / 5);

it(`dead-letters ${BAD} malformed rows with their reason and loses none of ${GOOD} good ones`, { timeout: 3_600_000 }, async () => {
  const s = await serveScaleModel({ modelId: `soak-poison-${Date.now().toString(36)}`, concurrency: 4, visibilityTimeoutSeconds: 30, extraInputs: POISON_EXTRA_INPUTS });
  try {
    const f = await runPoison(s, GOOD, BAD, { timeoutMs: 3_000_000 });
    recordSoakFigures("inference-poison", { ...f, nodeRssMiB: Math.round(process.memoryUsage().rss / 2 ** 20) });
    assert.deepEqual([f.goodOut, f.goodLost, f.goodDuplicates, f.goodInDlq, f.retried], [GOOD, 0, 0, 0, 0]);
    assert.deepEqual([f.badInDlq, f.badMissing, f.unreadableReasons], [BAD, 0, 0]);
    assert.ok(f.enginePid.before !== undefined && f.enginePid.before === f.enginePid.after, "the engine process survived");
  } finally {
    await s.close();
  }
});
