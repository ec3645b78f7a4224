/**
 * The hosted stack's execution environment for a zip function with layers (src/hosted/function-host.ts):
 * modules come from the function's code and its layers' `nodejs/node_modules` (NODE_PATH, as
 * Lambda sets it), never from a node_modules above them, such as this checkout's. Runs small
 * handlers of its own against a copy of the onnxruntime layer `npm run build` assembles; no emulator.
 */
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { HostedFunction, UnisolatedCodeError, type HostedFunctionConfig } from "../../../src/hosted/function-host.ts";
import { projectRoot } from "../../../src/workers/paths.ts";

const scratch = mkdtempSync(join(tmpdir(), "stf-function-host-"));
// Staged outside the checkout, as synth stages it into the hosted stack's cloud assembly.
const layer = join(scratch, "layer");
cpSync(join(projectRoot, "dist", "layers", "onnxruntime"), layer, { recursive: true });
const running: HostedFunction[] = [];
after(async () => {
  await Promise.all(running.map((f) => f.close()));
  rmSync(scratch, { recursive: true, force: true });
});

// A handler that loads ONNX Runtime as functions/inference/onnx-engine.ts does, and says from where.
const HANDLER = `
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
export const handler = async () => {
  const ort = require("onnxruntime-node");
  return { from: require.resolve("onnxruntime-node"), session: typeof ort.InferenceSession.create };
};
`;

/** A zip function whose code is `index.mjs` in a fresh folder under `parent`. */
function zipFunction(parent: string, layers: readonly string[]): HostedFunction {
  const code = mkdtempSync(join(parent, "code-"));
  writeFileSync(join(code, "index.mjs"), HANDLER);
  const config: HostedFunctionConfig = { name: "signature", arn: "arn:aws:lambda:us-east-1:000000000000:function:signature", bundle: join(code, "index.mjs"), layers, handlerExport: "handler", environment: {}, timeoutSeconds: 30, memoryMb: 256 };
  const fn = new HostedFunction(config, { PATH: process.env.PATH ?? "/usr/bin:/bin" }, () => undefined);
  running.push(fn);
  return fn;
}

describe("a hosted zip function with layers", () => {
  it("loads onnxruntime-node from its layer", async () => {
    // Act
    const result = await zipFunction(scratch, [layer]).invoke({});
    // Assert
    assert.ok(result.ok, JSON.stringify(result));
    const { from, session } = result.payload as { from: string; session: string };
    assert.ok(from.startsWith(join(layer, "nodejs", "node_modules", "onnxruntime-node")), `from the layer, not ${from}`);
    assert.equal(session, "function");
  });

  it("cannot load it without the layer, though this checkout's node_modules has it", async () => {
    // Act
    const result = await zipFunction(scratch, []).invoke({});
    // Assert
    assert.equal(result.ok, false);
    assert.match(!result.ok ? result.error.errorMessage : "", /Cannot find module 'onnxruntime-node'/);
  });

  it("refuses code below a node_modules folder, from which Lambda would load nothing", () => {
    // Arrange: a folder inside the checkout, whose node_modules holds onnxruntime-node
    const inside = join(projectRoot, ".tmp", "function-host");
    mkdirSync(inside, { recursive: true });
    try {
      // Act / Assert
      assert.throws(() => zipFunction(inside, [layer]), (e: unknown) => e instanceof UnisolatedCodeError && e.nodeModules === join(projectRoot, "node_modules") && e.message.includes("TMPDIR"));
    } finally {
      rmSync(inside, { recursive: true, force: true });
    }
  });
});
