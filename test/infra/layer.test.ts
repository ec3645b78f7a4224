/**
 * The onnxruntime layer as `npm run build` assembles it (scripts/build.ts, `dist/layers/onnxruntime/`):
 * one platform's binding, the one of the functions that take it, within Lambda's size limit; and
 * enough on its own: a module outside this checkout, with only the layer on NODE_PATH (as Lambda
 * puts `/opt/nodejs/node_modules` there), loads ONNX Runtime and runs a model with it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, describe, it } from "node:test";
import { LAMBDA_UNZIPPED_LIMIT_BYTES } from "../../scripts/build.ts";
import { FUNCTIONS, bundleOf, layerArchitecture } from "../../src/resources/definitions.ts";
import { projectRoot } from "../../src/workers/paths.ts";

const layer = join(projectRoot, "dist", "layers", "onnxruntime");
const modules = join(layer, "nodejs", "node_modules");
const scratch = mkdtempSync(join(tmpdir(), "stf-layer-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const filesUnder = (dir: string): string[] => (statSync(dir).isDirectory() ? readdirSync(dir).flatMap((f) => filesUnder(join(dir, f))) : [dir]);
const bytesUnder = (dir: string) => filesUnder(dir).reduce((n, f) => n + statSync(f).size, 0);

/**
 * A minimal ONNX model, `y = x + x` over float `x[N, 2]`, written as protobuf by hand
 * (onnx/onnx.proto: ModelProto, GraphProto, NodeProto, ValueInfoProto, TypeProto), so no model
 * file is kept in the repository.
 */
function doublingModel(): Uint8Array {
  const varint = (n: number): number[] => {
    const out: number[] = [];
    for (; n > 127; n >>>= 7) out.push((n & 127) | 128);
    return [...out, n];
  };
  const num = (field: number, n: number) => [...varint(field << 3), ...varint(n)];
  const bytes = (field: number, body: readonly number[] | string) => {
    const data = typeof body === "string" ? [...Buffer.from(body)] : body;
    return [...varint((field << 3) | 2), ...varint(data.length), ...data];
  };
  const tensor = (name: string) =>
    bytes(1, name).concat(bytes(2, bytes(1, [...num(1, 1 /* FLOAT */), ...bytes(2, [...bytes(1, bytes(2, "N")), ...bytes(1, num(1, 2))])])));
  const node = [...bytes(1, "x"), ...bytes(1, "x"), ...bytes(2, "y"), ...bytes(4, "Add")];
  const graph = [...bytes(1, node), ...bytes(2, "double"), ...bytes(11, tensor("x")), ...bytes(12, tensor("y"))];
  return Uint8Array.from([...num(1, 8 /* IR version */), ...bytes(8, [...bytes(1, ""), ...num(2, 13 /* opset */)]), ...bytes(7, graph)]);
}

describe("the onnxruntime layer", () => {
  const arch = { x86_64: "x64", arm64: "arm64" }[layerArchitecture("onnxruntime")];
  const foreign = process.platform !== "linux" || process.arch !== arch ? `the layer's binding is for linux ${arch}, this is ${process.platform} ${process.arch}` : false;

  it("holds the Lambda layer layout: nodejs/node_modules with onnxruntime-node and onnxruntime-common, nothing else", () => {
    assert.ok(existsSync(modules), `${relative(projectRoot, modules)} exists: run npm run build`);
    assert.deepEqual(readdirSync(layer), ["nodejs"]);
    assert.deepEqual(readdirSync(modules).sort(), ["onnxruntime-common", "onnxruntime-node"]);
    const pinned = JSON.parse(readFileSync(join(projectRoot, "layers", "onnxruntime", "package.json"), "utf8")).dependencies["onnxruntime-node"];
    assert.equal(pinned, JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")).optionalDependencies["onnxruntime-node"], "the layer pins the root's version (an optional dependency: README, Serving modes)");
    assert.equal(JSON.parse(readFileSync(join(modules, "onnxruntime-node", "package.json"), "utf8")).version, pinned);
  });

  it("holds the binding of exactly one platform: linux on the architecture of the functions that take the layer", () => {
    // Act
    const binaries = filesUnder(join(modules, "onnxruntime-node", "bin")).map((f) => relative(join(modules, "onnxruntime-node", "bin"), f));
    // Assert
    assert.deepEqual(binaries.sort(), [`napi-v6/linux/${arch}/libonnxruntime.so.1`, `napi-v6/linux/${arch}/onnxruntime_binding.node`]);
    assert.deepEqual(Object.values(FUNCTIONS).filter((f) => f.layers?.includes("onnxruntime")).map((f) => f.name), ["signature-inference"]);
  });

  it("fits in Lambda's 250 MB unzipped with the bundle of each function that takes it", () => {
    for (const fn of Object.values(FUNCTIONS).filter((f) => f.layers?.includes("onnxruntime"))) {
      const total = bytesUnder(layer) + bytesUnder(join(projectRoot, "dist", "functions", bundleOf(fn.name)));
      assert.ok(total < LAMBDA_UNZIPPED_LIMIT_BYTES, `${fn.name}: ${total} bytes`);
    }
    assert.ok(bytesUnder(layer) < 60 * 1024 * 1024, `one platform's binding is about 45 MiB, not the package's 288 MiB: ${bytesUnder(layer)} bytes`);
  });

  it("loads ONNX Runtime with nothing but the layer on NODE_PATH, and runs a model with it", { skip: foreign }, () => {
    // Arrange: a handler outside the checkout (no node_modules above it), as /var/task is on Lambda
    const task = join(scratch, "task");
    const model = join(scratch, "double.onnx");
    writeFileSync(model, doublingModel());
    const script = [
      'import { createRequire } from "node:module";',
      'const require = createRequire(import.meta.url);',
      'const ort = require("onnxruntime-node");',
      `const session = await ort.InferenceSession.create(${JSON.stringify(model)});`,
      'const { y } = await session.run({ x: new ort.Tensor("float32", Float32Array.from([1, 2, 3, 4]), [2, 2]) });',
      'console.log(JSON.stringify({ from: require.resolve("onnxruntime-node"), y: [...y.data], dims: y.dims }));',
    ].join("\n");
    mkdirSync(task);
    writeFileSync(join(task, "index.mjs"), script);
    // Act
    const run = spawnSync(process.execPath, [join(task, "index.mjs")], { cwd: task, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NODE_PATH: modules }, encoding: "utf8" });
    // Assert
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout.trim()) as { from: string; y: number[]; dims: number[] };
    assert.ok(out.from.startsWith(modules), `onnxruntime-node came from the layer, not ${out.from}`);
    assert.deepEqual([out.y, out.dims], [[2, 4, 6, 8], [2, 2]]);
  });
});
