/**
 * Issue #6 through the public API on the local runtime: resume after a worker dies (SIGKILL) or
 * is given notice (SIGTERM, SIGKILL 2 s later: Spot's interruption, issue #17), bounded restarts,
 * the hang watchdog, and warm start. One runtime for the file; the digits data of the demo
 * (scikit-learn's, no download), two MultiWorkerMirroredStrategy workers. Two restarts, the
 * default maxWorkerRestarts, in one fit.
 *
 * The user script (scripts/resume_digits.py) reports its pid every epoch (so the test can kill
 * it), the step it restored, and its loss on its first batch, as STF_PROGRESS lines.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { JobHangError, LocalRuntime, TFEstimator, TFModel, Table, WorkerLostError, schemaOf, type Row } from "../../../src/index.ts";
import { prepareDigits } from "../../../demo/digits-data.ts";
import type { WorkerProgress } from "../../../src/workers/launcher.ts";

const SCRIPT = join(import.meta.dirname, "..", "scripts", "resume_digits.py");
const schema = schemaOf({ pixels: "FLOAT32[64]", label: "INT64" });
const TIMEOUT_MS = 150_000;
const EPOCHS = 12;

let runtime: LocalRuntime;
let trainRows: readonly Row[];
let testRows: readonly Row[];
let baseline: { model: TFModel; accuracy: number } | undefined;

before(async () => {
  ({ trainRows, testRows } = prepareDigits(mkdtempSync(join(tmpdir(), "stf-digits-"))));
  runtime = await LocalRuntime.start();
});

after(async () => {
  await runtime.close();
});

function digitsEstimator(hp: Record<string, unknown> = {}, workers = 2): TFEstimator {
  return new TFEstimator()
    .withRuntime(runtime)
    .setWorkerNum(workers)
    .setTrainScripts([SCRIPT])
    .setTrainHyperParams({ epochs: EPOCHS, seed: 7, ...hp })
    .setTrainSelectedCols(["pixels", "label"])
    .setBatchSize(32)
    .setRemainder("pad")
    .setCheckpointEverySteps(10)
    .setInferenceScripts([SCRIPT])
    .setInferenceSelectedCols(["pixels"])
    .setInferenceOutputCols(["digit", "score"])
    .setInferenceOutputTypes(["INT64", "FLOAT32"])
    .setModelId("resume-digits")
    .setTimeoutMs(TIMEOUT_MS);
}

async function accuracyOf(model: TFModel): Promise<number> {
  const scored = await model.transform(Table.fromRows(schema, testRows));
  return scored.rows.filter((r) => BigInt(r.digit as bigint) === BigInt(r.label as bigint)).length / scored.rows.length;
}

const reports = (events: WorkerProgress[], kind: string) => events.filter((p) => p.kind === kind);

describe("resume after a worker dies", { timeout: 4 * TIMEOUT_MS }, () => {
  it("trains uninterrupted (the reference run)", async () => {
    const model = await digitsEstimator().fit(Table.fromRows(schema, trainRows));
    baseline = { model, accuracy: await accuracyOf(model) };
    console.log(`[transcript] uninterrupted: ${EPOCHS} epochs, final step ${model.metadata.step}, held-out accuracy ${baseline.accuracy.toFixed(4)}`);
    assert.ok(baseline.accuracy > 0.9, `accuracy ${baseline.accuracy}`);
  });

  it("saves a checkpoint when a worker gets SIGTERM (SIGKILL 2 s later) and resumes from it, resumes from the last periodic one when a worker is SIGKILLed, and ends as accurate as the uninterrupted run", async () => {
    assert.ok(baseline, "needs the reference run");
    const events: WorkerProgress[] = [];
    const transcript: string[] = [];
    const restarts: { reason: string; step?: number }[] = [];
    let signalled: { pid: number; step: number } | undefined;
    let killed: { pid: number; step: number } | undefined;
    const model = await digitsEstimator().fit(Table.fromRows(schema, trainRows), {
      onProgress: (p) => {
        events.push(p);
        if (p.kind === "restored") transcript.push(`worker-${p.member.index} (pid ${String(p.pid)}) restored step ${String(p.step)}, first-batch loss ${Number(p.first_batch_loss).toFixed(4)}`);
        if (p.kind === "preempted") transcript.push(`worker-${p.member.index} took the notice at step ${String(p.step)}: the set saves at step ${String(p.save_at)}`);
        if (p.kind !== "pid" || p.member.index !== 1) return;
        // Spot's interruption: SIGTERM, then SIGKILL 2 s later (two minutes on AWS).
        if (!signalled && Number(p.epoch_done) >= 3) {
          const target = (signalled = { pid: Number(p.pid), step: Number(p.step) });
          transcript.push(`SIGTERM worker-1 (pid ${target.pid}) after epoch ${String(p.epoch_done)} at step ${target.step}; SIGKILL 2 s later`);
          process.kill(target.pid, "SIGTERM");
          setTimeout(() => {
            try {
              process.kill(target.pid, "SIGKILL");
            } catch {
              // it left on its own, as it should
            }
          }, 2_000);
        } else if (signalled && restarts.length === 1 && !killed && Number(p.epoch_done) >= 7) {
          killed = { pid: Number(p.pid), step: Number(p.step) };
          transcript.push(`SIGKILL worker-1 (pid ${killed.pid}) after epoch ${String(p.epoch_done)} at step ${killed.step}`);
          process.kill(killed.pid, "SIGKILL");
        }
      },
      onRestart: (r) => {
        restarts.push({ reason: r.reason, ...(r.checkpoint ? { step: r.checkpoint.step } : {}) });
        transcript.push(`restart attempt ${r.attempt}: ${r.member} lost (${r.reason}); last checkpoint step ${r.checkpoint?.step ?? "none"}`);
      },
    });
    const accuracy = await accuracyOf(model);
    const notices = reports(events, "preempted");
    const resumed = reports(events, "restored").filter((p) => Number(p.step) > 0).map((p) => Number(p.step));
    transcript.push(`finished at step ${model.metadata.step}; held-out accuracy ${accuracy.toFixed(4)} vs uninterrupted ${baseline.accuracy.toFixed(4)}`);
    console.log(transcript.map((l) => `[transcript] ${l}`).join("\n"));

    assert.ok(signalled && killed, "worker-1 was signalled, then killed, mid-fit");
    assert.equal(notices.length, 1, "worker-1 took the notice once");
    const saveAt = Number(notices[0]!.save_at);
    assert.ok(Number(notices[0]!.step) >= signalled.step && saveAt === Number(notices[0]!.step) + 1, `notice ${JSON.stringify(notices[0])} after the signal at step ${signalled.step}`);
    assert.equal(restarts.length, 2, "the set restarted once per interruption");
    assert.match(restarts[0]!.reason, /got SIGTERM/);
    assert.equal(restarts[0]!.step, saveAt, "the first restart starts from the checkpoint taken on SIGTERM");
    assert.deepEqual(resumed.slice(0, 2), [saveAt, saveAt], "both workers resumed at the step saved on SIGTERM");
    assert.equal(resumed.length, 4, "both workers resumed after each restart");
    assert.ok(resumed.slice(2).every((step) => step > saveAt && step <= killed!.step), `resumed steps ${resumed.slice(2)} after the kill at ${killed.step}: the last periodic checkpoint`);
    // Each resume repeats the steps of its epoch before the checkpoint, so the interrupted fit trains a little more: it may end higher.
    assert.ok(accuracy >= baseline.accuracy - 0.02, `accuracy ${accuracy} at most 2 points under the uninterrupted ${baseline.accuracy}`);
  });

  it("fails naming the worker, the last checkpoint and the reason when no restart is left", async () => {
    let killed = false;
    const fit = digitsEstimator()
      .setMaxWorkerRestarts(0)
      .fit(Table.fromRows(schema, trainRows), {
        onProgress: (p) => {
          if (p.kind === "pid" && p.member.index === 1 && Number(p.epoch_done) >= 2 && !killed) {
            killed = true;
            process.kill(Number(p.pid), "SIGKILL");
          }
        },
      });
    await assert.rejects(fit, (e: unknown) => {
      assert.ok(e instanceof WorkerLostError, String(e));
      assert.equal(e.member, "worker-1");
      assert.ok(e.lastCheckpoint && e.lastCheckpoint.step > 0, "a checkpoint was recorded");
      assert.match(e.message, /on worker-1: the process exited with SIGKILL/);
      assert.match(e.message, new RegExp(`last checkpoint: step ${e.lastCheckpoint.step} at s3://`));
      assert.match(e.message, /maxWorkerRestarts/);
      return true;
    });
  });
});

describe("hang watchdog", { timeout: TIMEOUT_MS }, () => {
  it("fails a job whose workers stop making progress, naming the worker, its shards and its feed position", async () => {
    const started = Date.now();
    const fit = digitsEstimator({ hang: true }).setProgressTimeoutMs(8_000).fit(Table.fromRows(schema, trainRows));
    await assert.rejects(fit, (e: unknown) => {
      assert.ok(e instanceof JobHangError, String(e));
      assert.match(e.member!, /^worker-[01]$/);
      assert.equal(e.step, 0);
      assert.ok(e.feedPosition > 0, `feed position ${e.feedPosition}`);
      assert.match(e.message, /no progress for \d+ ms \(progressTimeoutMs\)/);
      assert.match(e.message, new RegExp(`s00000 \\(cursor ${trainRows.length}, done, \\d+ rows sent to ${e.member}\\)`));
      console.log(`[watchdog] ${e.message.split("\n")[0]} (after ${((Date.now() - started) / 1000).toFixed(1)} s)`);
      return true;
    });
  });
});

describe("warm start", { timeout: TIMEOUT_MS }, () => {
  it("starts from the source model's weights (its loss on the first batch, not a fresh model's) and fine-tuning improves on new rows", async () => {
    assert.ok(baseline, "needs the reference run");
    const events: WorkerProgress[] = [];
    await digitsEstimator({ epochs: 3, report_source: baseline.model.metadata.artifactUri }, 1)
      .setInitModelUri(baseline.model.metadataUri)
      .fit(Table.fromRows(schema, testRows), { onProgress: (p) => void events.push(p) });
    const [restored] = reports(events, "restored");
    const [source] = reports(events, "source");
    const [trained] = reports(events, "trained");
    console.log(`[warm start] first-batch loss: source ${source?.first_batch_loss}, restored ${restored?.first_batch_loss}, fresh ${source?.fresh_first_batch_loss}, after fine-tuning ${trained?.first_batch_loss}`);
    assert.equal(restored!.step, 0, "a warm start is not a resume: training counts from step 0");
    assert.ok(Math.abs(Number(restored!.first_batch_loss) - Number(source!.first_batch_loss)) < 1e-5);
    assert.ok(Number(source!.fresh_first_batch_loss) > Number(restored!.first_batch_loss) + 0.5, "a fresh model does much worse");
    assert.ok(Number(trained!.first_batch_loss) < Number(restored!.first_batch_loss), "fine-tuning improves on the new rows");
  });
});
