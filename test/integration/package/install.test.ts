/**
 * The package as a user gets it: `npm pack`, installed into a fresh project that has its own
 * package.json and no access to this repository's sources, then a script that imports only
 * `serverless-tf` fits digits on 2 workers on the embedded default and transforms the held-out
 * rows, the `serverless-tf` command lists the job it ran, and a CDK app of the user's composes
 * the construct from `serverless-tf/cdk`, its layer included.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { FUNCTIONS, bundleOf, type FunctionName } from "../../../src/resources/definitions.ts";
import { projectPython, projectRoot } from "../../../src/workers/paths.ts";

const endpoint = process.env.AWS_ENDPOINT_URL ?? assert.fail("AWS_ENDPOINT_URL is not set: run this file through `npm test`");
const work = mkdtempSync(join(tmpdir(), "stf-package-"));
const project = join(work, "project");
// The installed package finds its Python through SERVERLESS_TF_PYTHON, as a user's would, and its
// own root (never this checkout's).
const { SERVERLESS_TF_ROOT: _checkout, ...inherited } = process.env;
const userEnv = { ...inherited, AWS_ENDPOINT_URL: endpoint, SERVERLESS_TF_PYTHON: projectPython };

/**
 * Runs npm quietly; its output is shown only when it fails. onnxruntime-node's install script
 * would download CUDA providers from NuGet on linux x64, which these machines cannot reach and the
 * CPU binding does not need: the user's project skips it as this repository's .npmrc does.
 */
function npm(args: readonly string[], cwd: string): void {
  const r = spawnSync("npm", args, { cwd, encoding: "utf8", env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: "skip" } });
  assert.equal(r.status, 0, `npm ${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
}

before(() => {
  npm(["pack", "--pack-destination", work], projectRoot);
  const tarball = readdirSync(work).find((f) => f.endsWith(".tgz"))!;
  execFileSync("mkdir", ["-p", project]);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "user-project", private: true, type: "module" }));
  npm(["install", "--no-audit", "--no-fund", "--prefer-offline", join(work, tarball)], project);
  for (const script of ["fit.mjs", "cdk-app.mjs"]) copyFileSync(join(projectRoot, "test", "integration", "package", "fixtures", script), join(project, script));
});

after(() => rmSync(work, { recursive: true, force: true }));

describe("the installed package", () => {
  let jobId = "";

  it("fits digits on 2 workers and transforms the held-out rows from a script that imports only serverless-tf", () => {
    // Act
    const run = spawnSync(process.execPath, ["fit.mjs"], { cwd: project, env: userEnv, encoding: "utf8", timeout: 600_000 });

    // Assert
    assert.equal(run.status, 0, `the user's script failed:\n${run.stderr}`);
    const result = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as { rows: number; accuracy: number; jobId: string };
    assert.equal(result.rows, 360, "one output row per held-out row");
    assert.ok(result.accuracy >= 0.95, `held-out accuracy ${result.accuracy} is at least the demo's bar 0.95`);
    jobId = result.jobId;
  });

  it("lists that job with its final state through the serverless-tf command", () => {
    // Act
    const run = spawnSync(join(project, "node_modules", ".bin", "serverless-tf"), ["jobs"], { cwd: project, env: userEnv, encoding: "utf8" });

    // Assert
    assert.equal(run.status, 0, run.stderr);
    const line = run.stdout.split("\n").find((l) => l.startsWith(jobId));
    assert.ok(jobId && line, `the fit's job ${jobId} is listed:\n${run.stdout}`);
    assert.match(line, /\btrain\s+SUCCEEDED\b/);
  });
});

describe("serverless-tf/cdk in the user's CDK app", () => {
  /** Runs the user's app (fixtures/cdk-app.mjs) into a fresh cloud assembly: what it printed, parsed. */
  function synth(env: NodeJS.ProcessEnv): { outdir: string; result: Record<string, any> } {
    const outdir = mkdtempSync(join(work, "cdk.out-"));
    const run = spawnSync(process.execPath, ["cdk-app.mjs", outdir], { cwd: project, env, encoding: "utf8", timeout: 120_000 });
    assert.equal(run.status, 0, `the user's CDK app failed:\n${run.stderr}`);
    return { outdir, result: JSON.parse(run.stdout.trim().split("\n").at(-1)!) as Record<string, any> };
  }

  before(() => {
    // aws-cdk-lib and constructs are optional peers: a user who wants the construct installs them.
    const peers = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")).devDependencies as Record<string, string>;
    npm(["install", "--no-audit", "--no-fund", "--prefer-offline", `aws-cdk-lib@${peers["aws-cdk-lib"]}`, `constructs@${peers.constructs}`], project);
  });

  it("deploys the zip functions from the installed package's own bundles, and the served model's queues", () => {
    // Act: nothing but the installed package
    const { outdir, result } = synth(userEnv);

    // Assert
    assert.equal(result.error, undefined, result.message);
    const installed = join(project, "node_modules", "serverless-tf", "dist", "functions");
    const zips = (Object.keys(FUNCTIONS) as FunctionName[]).filter((n) => FUNCTIONS[n].packaging === "zip");
    assert.equal(result.functions.length, zips.length, JSON.stringify(result.functions));
    for (const { id, assetPath } of result.functions as { id: string; assetPath: string }[]) {
      const name = zips.find((n) => id.startsWith(`Tf${n.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase())}`));
      assert.ok(name, `${id} is one of the zip functions`);
      const staged = join(outdir, assetPath, "index.mjs");
      assert.ok(readFileSync(staged).equals(readFileSync(join(installed, bundleOf(name), "index.mjs"))), `${id} deploys node_modules/serverless-tf/dist/functions/${bundleOf(name)}/index.mjs`);
    }
    assert.deepEqual((result.queues as string[]).filter((q) => q.startsWith("stf-serve-")).sort(), ["stf-serve-digits-dlq", "stf-serve-digits-input", "stf-serve-digits-output"]);
  });

  it("deploys the onnxruntime layer from the installed package, which holds the binding for linux x64 and no other platform", () => {
    // Arrange
    const filesUnder = (dir: string): string[] => (statSync(dir).isDirectory() ? readdirSync(dir).flatMap((f) => filesUnder(join(dir, f))) : [dir]);
    const binariesIn = (layer: string) => {
      const bin = join(layer, "nodejs", "node_modules", "onnxruntime-node", "bin");
      return filesUnder(bin).map((f) => relative(bin, f)).sort();
    };
    const shipped = join(project, "node_modules", "serverless-tf", "dist", "layers", "onnxruntime");
    // Act
    const { outdir, result } = synth(userEnv);
    const { Resources } = JSON.parse(readFileSync(join(outdir, "UserStack.template.json"), "utf8")) as { Resources: Record<string, { Type: string; Metadata?: Record<string, string> }> };
    const layers = Object.values(Resources).filter((r) => r.Type === "AWS::Lambda::LayerVersion");
    // Assert
    assert.equal(result.error, undefined, result.message);
    assert.deepEqual(binariesIn(shipped), ["napi-v6/linux/x64/libonnxruntime.so.1", "napi-v6/linux/x64/onnxruntime_binding.node"], "the packed package holds one platform's binding");
    assert.equal(layers.length, 1);
    const staged = join(outdir, layers[0]!.Metadata!["aws:asset:path"]!);
    assert.deepEqual(binariesIn(staged), binariesIn(shipped));
    const binding = join("nodejs", "node_modules", "onnxruntime-node", "bin", "napi-v6", "linux", "x64", "onnxruntime_binding.node");
    assert.ok(readFileSync(join(staged, binding)).equals(readFileSync(join(shipped, binding))), "the layer deployed is the one the package ships");
  });

  it("builds the inference image from the installed package: its context holds the shipped bundle", () => {
    // Act
    const { outdir, result } = synth(userEnv);

    // Assert
    assert.equal(result.error, undefined, result.message);
    const [image] = result.images as { id: string; assetPath: string; dockerfile: string }[];
    assert.ok(image, JSON.stringify(result.images));
    assert.equal(image.dockerfile, "functions/inference/Dockerfile");
    const staged = join(outdir, image.assetPath, "dist", "functions", "inference", "index.mjs");
    assert.ok(readFileSync(staged).equals(readFileSync(join(project, "node_modules", "serverless-tf", "dist", "functions", "inference", "index.mjs"))), "the image copies the bundle the package ships");
  });
});
