/**
 * Parameter-server training (issue #17) through the public API on the local runtime: digits with
 * 2 workers and 1 parameter server. The launcher starts a chief beside them; the chief runs the
 * demo's own training entry under ParameterServerStrategy, each worker spools its feed and serves
 * the chief's steps on its own spool, and the model is checked through `transform`. Then the same
 * fit with a worker interrupted mid-fit as Fargate Spot does it (SIGTERM, then SIGKILL): the chief
 * reschedules its steps, the worker rejoins at its address, and neither the chief nor the ps is
 * restarted; then the ps is SIGKILLed, and the set restarts from its last checkpoint.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalRuntime, TFEstimator, TFModel, Table, type Row } from "../../../src/index.ts";
import type { MemberRecord } from "../../../src/registry/types.ts";
import { DIGITS_SCHEMA as schema, demoFile, prepareDigits } from "../../../demo/digits-data.ts";
import type { WorkerProgress } from "../../../src/workers/launcher.ts";
import { projectRoot } from "../../../src/workers/paths.ts";

let runtime: LocalRuntime;
let trainRows: readonly Row[];
let testRows: readonly Row[];
let uninterrupted: number | undefined;
const logged: string[] = [];

before(async () => {
  ({ trainRows, testRows } = prepareDigits(mkdtempSync(join(tmpdir(), "stf-ps-digits-"))));
  runtime = await LocalRuntime.start({ workerLog: (line) => void logged.push(line) });
});

after(async () => {
  await runtime.close();
  // The members' own lines, for a failure here: .tmp/logs/parameter-servers.log
  mkdirSync(join(projectRoot, ".tmp", "logs"), { recursive: true });
  writeFileSync(join(projectRoot, ".tmp", "logs", "parameter-servers.log"), logged.join("\n"));
});

function estimator(): TFEstimator {
  return new TFEstimator()
    .withRuntime(runtime)
    .setWorkerNum(2)
    .setPsNum(1)
    .setTrainScripts([demoFile("digits_model.py")])
    .setTrainHyperParams({ epochs: 25, hidden: 64, learning_rate: 0.005, seed: 7 })
    .setTrainSelectedCols(["pixels", "label"])
    .setBatchSize(32)
    .setRemainder("pad")
    .setCheckpointEverySteps(50)
    .setInferenceScripts([demoFile("digits_model.py")])
    .setInferenceSelectedCols(["pixels"])
    .setInferenceOutputCols(["digit", "score"])
    .setInferenceOutputTypes(["INT64", "FLOAT32"])
    .setModelId("ps-digits")
    .setTimeoutMs(480_000);
}

async function accuracyOf(model: TFModel): Promise<number> {
  const scored = await model.transform(Table.fromRows(schema, testRows));
  assert.equal(scored.rows.length, testRows.length);
  return scored.rows.filter((r) => BigInt(r.digit as bigint) === BigInt(r.label as number)).length / scored.rows.length;
}

describe("parameter-server training", { timeout: 900_000 }, () => {
  it("fits digits with 2 workers and 1 ps, coordinated by a chief, to the demo's held-out accuracy", async () => {
    const progress: WorkerProgress[] = [];
    const restarts: string[] = [];
    const model = await estimator().fit(Table.fromRows(schema, trainRows), { onProgress: (p) => void progress.push(p), onRestart: (r) => void restarts.push(`${r.member}: ${r.reason}`) });
    assert.deepEqual(restarts, [], `an uninterrupted run restarts nothing; log tail:\n${logged.slice(-60).join("\n")}`);

    const roles = new Set(progress.map((p) => p.member.role));
    assert.deepEqual([...roles], ["chief"], "only the chief runs the training entry, so only it reports epochs");
    const epochs = progress.filter((p) => p.epoch !== undefined);
    assert.equal(Math.max(...epochs.map((p) => Number(p.epoch))), 25);
    // Each epoch is every worker's steps: 2 workers x ceil(rows per worker / 32) under pad.
    const stepsPerEpoch = 2 * Math.ceil(Math.ceil(trainRows.length / 2) / 32);
    assert.equal(model.metadata.step, 25 * stepsPerEpoch, "the chief ran every worker's steps in every epoch");
    uninterrupted = await accuracyOf(model);
    console.log(`[transcript] parameter servers: ${epochs.length} epochs, final step ${model.metadata.step}, held-out accuracy ${uninterrupted.toFixed(4)}`);
    assert.ok(uninterrupted >= 0.95, `held-out accuracy ${uninterrupted} under the demo's bar 0.95`);
  });

  it("goes on when a worker is interrupted as Spot interrupts (SIGTERM, SIGKILL 2 s later; it rejoins, the chief and the ps keep their processes), restarts the set from its checkpoint when the ps is SIGKILLed, and ends within 2 points", async () => {
    assert.ok(uninterrupted !== undefined, "needs the uninterrupted run");
    let jobId = "";
    const snapshots: MemberRecord[][] = [];
    let killing: Promise<void> | undefined;
    const restarts: { member: string; reason: string; checkpointStep?: number }[] = [];
    // The worker as Fargate Spot reclaims a task: SIGTERM, then SIGKILL 2 s later (two minutes on AWS).
    const kill = (role: "worker" | "ps", index: number, spot: boolean) => {
      killing = runtime.deps.registry.members(jobId).then((members) => {
        snapshots.push(members);
        const pid = members.find((m) => m.role === role && m.index === index)!.pid;
        process.kill(pid, spot ? "SIGTERM" : "SIGKILL");
        if (spot) setTimeout(() => void Promise.resolve().then(() => process.kill(pid, "SIGKILL")).catch(() => undefined), 2_000);
      });
    };
    const model = await estimator().fit(Table.fromRows(schema, trainRows), {
      onStarted: (id) => (jobId = id),
      onRestart: (r) => void restarts.push({ member: r.member, reason: r.reason, ...(r.checkpoint ? { checkpointStep: r.checkpoint.step } : {}) }),
      onProgress: (p) => {
        if (p.member.role !== "chief" || restarts.some((r) => r.member === "ps-0")) return;
        // worker-1 at epoch 4; the ps at epoch 9, after worker-1 rejoined (the same chief process runs on)
        if (!killing && Number(p.epoch) >= 4) kill("worker", 1, true);
        else if (snapshots.length === 1 && restarts.length === 1 && Number(p.epoch) >= 9) void killing!.then(() => kill("ps", 0, false));
      },
    });
    await killing;
    assert.equal(snapshots.length, 2, "a worker, then the ps, were killed mid-fit");
    const [atWorkerKill, atPsKill] = snapshots as [MemberRecord[], MemberRecord[]];
    const of = (members: readonly MemberRecord[], role: string, index = 0) => members.find((m) => m.role === role && m.index === index)!;
    for (const role of ["chief", "ps"]) {
      assert.deepEqual([of(atPsKill, role).pid, of(atPsKill, role).epoch], [of(atWorkerKill, role).pid, of(atWorkerKill, role).epoch], `${role}-0 kept its process and its registration through the worker's loss`);
    }
    assert.equal(of(atPsKill, "worker", 1).epoch, of(atWorkerKill, "worker", 1).epoch + 1, "worker-1 registered again");
    assert.deepEqual(restarts.map((r) => r.member), ["worker-1", "ps-0"]);
    assert.match(restarts[0]!.reason, /rejoining the running cluster/);
    assert.ok((restarts[1]!.checkpointStep ?? 0) > 0, "the set restarted from a checkpoint");
    assert.ok(model.metadata.step > restarts[1]!.checkpointStep!, "and trained on from it");
    const stepsPerEpoch = 2 * Math.ceil(Math.ceil(trainRows.length / 2) / 32);
    assert.equal(model.metadata.step, 25 * stepsPerEpoch, "the restarted set trained only the epochs its checkpoint had not completed (ctx.initial_epoch)");
    const accuracy = await accuracyOf(model);
    console.log(`[transcript] parameter servers, worker-1 interrupted at epoch 4, ps-0 SIGKILLed at epoch 9 (restart from step ${restarts[1]!.checkpointStep}): held-out accuracy ${accuracy.toFixed(4)} against ${uninterrupted.toFixed(4)} uninterrupted`);
    assert.ok(Math.abs(accuracy - uninterrupted) <= 0.02, `accuracy ${accuracy} against ${uninterrupted} uninterrupted`);
  });
});
