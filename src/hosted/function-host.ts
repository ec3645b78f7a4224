/**
 * Runs a function of the template as Lambda runs it: its built bundle (the files the zip or image
 * holds) in execution environments of their own, each a Node process with the function's
 * environment and memory, one invocation at a time, reused while warm, at most its reserved
 * concurrency at once, and killed at its timeout (Lambda's "Task timed out"). A zip function
 * finds modules as on Lambda: in its code and its layers (NODE_PATH), and nowhere above them.
 *
 * Each environment also reports every `SERVERLESS_TF_*` variable the function reads that its
 * environment does not set, so a test can hold the code to what the template configures.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { ServerlessTfError } from "../errors.ts";

export interface HostedFunctionConfig {
  /** The physical name (what `Ref` returned for it). */
  readonly name: string;
  readonly arn: string;
  /** The bundle's entry file. */
  readonly bundle: string;
  /**
   * A zip function's layers: the folder of each one's contents, in the template's order. Given
   * (even empty), the function resolves modules as on Lambda: its code's folder and each layer's
   * `nodejs/node_modules` on NODE_PATH, and no `node_modules` above them. Absent for an image,
   * whose modules are its own tree's.
   */
  readonly layers?: readonly string[];
  /** The handler's export (`index.handler` -> `handler`). */
  readonly handlerExport: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly timeoutSeconds: number;
  readonly memoryMb: number;
  readonly reservedConcurrency?: number;
}

export type InvokeResult =
  | { readonly ok: true; readonly payload: unknown }
  | { readonly ok: false; readonly error: { readonly errorType: string; readonly errorMessage: string; readonly stackTrace?: readonly string[] } };

/**
 * A zip function's code or layer lies below a `node_modules` folder, from which Node would load
 * what the function's bundle and layers lack, as Lambda never does (nothing is above `/var/task`
 * and `/opt`): a missing layer file would pass unseen.
 */
export class UnisolatedCodeError extends ServerlessTfError {
  constructor(
    readonly functionName: string,
    readonly dir: string,
    readonly nodeModules: string,
  ) {
    super(`${functionName}: ${nodeModules} is above ${dir}, so the function could load modules its zip and layers do not hold. Run with TMPDIR outside any Node project (the hosted stack synthesizes there).`);
  }
}

/** More invocations at once than the function's reserved concurrency (Lambda's 429 TooManyRequestsException). */
export class ThrottledError extends ServerlessTfError {
  constructor(readonly functionName: string, readonly concurrency: number) {
    super(`${functionName}: rate exceeded, all ${concurrency} of its reserved concurrency are busy. Retry later, or raise the function's reserved concurrency.`);
  }
}

// Runs in each execution environment: records reads of unset settings, loads the bundle, serves
// invocations over IPC. Plain JavaScript: it runs the built bundle, not the sources.
const BOOTSTRAP = `
const [bundle, exportName] = process.argv.slice(1);
const seen = new Set();
const note = (k) => { if (typeof k === "string" && k.startsWith("SERVERLESS_TF_") && !Object.hasOwn(env, k) && !seen.has(k)) { seen.add(k); process.send({ kind: "env-read", name: k }); } };
const env = process.env;
process.env = new Proxy(env, { get(t, k) { note(k); return Reflect.get(t, k); }, has(t, k) { note(k); return Reflect.has(t, k); } });
const { pathToFileURL } = await import("node:url");
const mod = await import(pathToFileURL(bundle).href);
const handler = mod[exportName];
if (typeof handler !== "function") throw new Error(bundle + " exports no function " + exportName);
process.on("message", async (m) => {
  const context = { functionName: m.functionName, invokedFunctionArn: m.arn, awsRequestId: m.id, memoryLimitInMB: String(m.memoryMb), callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, m.deadline - Date.now()) };
  try {
    const payload = await handler(m.event, context);
    process.send({ kind: "result", id: m.id, ok: true, payload: payload === undefined ? null : payload });
  } catch (e) {
    process.send({ kind: "result", id: m.id, ok: false, error: { errorType: (e && e.name) || "Error", errorMessage: String((e && e.message) || e), stackTrace: String((e && e.stack) || "").split("\\n") } });
  }
});
process.send({ kind: "ready" });
`;

interface Sandbox {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
}

export class HostedFunction {
  /** `SERVERLESS_TF_*` names read by the function and not set in its environment. */
  readonly unsetReads = new Set<string>();
  /** Execution environments started so far (cold starts). */
  coldStarts = 0;
  private readonly idle: Sandbox[] = [];
  private readonly all = new Set<Sandbox>();
  private busy = 0;
  private closed = false;

  /** Zip: NODE_PATH as Lambda sets it, with this function's code and layers. */
  private readonly nodePath: string | undefined;

  constructor(
    readonly config: HostedFunctionConfig,
    /** AWS endpoint, region and credentials: what the Lambda service gives every function. */
    private readonly serviceEnv: Readonly<Record<string, string>>,
    private readonly log: (line: string) => void,
  ) {
    const { layers } = config;
    if (!layers) return;
    for (const dir of [dirname(config.bundle), ...layers]) {
      const above = nodeModulesAbove(dir);
      if (above) throw new UnisolatedCodeError(config.name, dir, above);
    }
    // Lambda extracts the layers into /opt in order, a later one's files over an earlier one's,
    // and puts /opt/nodejs/node_modules before the code's /var/task on NODE_PATH.
    this.nodePath = [...layers].reverse().map((l) => join(l, "nodejs", "node_modules")).concat(dirname(config.bundle)).join(delimiter);
  }

  get concurrency(): number {
    return this.config.reservedConcurrency ?? 1000;
  }

  async invoke(event: unknown): Promise<InvokeResult> {
    if (this.closed) throw new ServerlessTfError(`${this.config.name} is shut down`);
    if (this.busy >= this.concurrency) throw new ThrottledError(this.config.name, this.concurrency);
    this.busy++;
    const sandbox = this.idle.pop() ?? this.start();
    let reusable = true;
    try {
      await sandbox.ready;
      return await this.run(sandbox, event, (r) => (reusable = r));
    } finally {
      this.busy--;
      if (reusable && !this.closed) this.idle.push(sandbox);
      else this.kill(sandbox);
    }
  }

  private run(sandbox: Sandbox, event: unknown, setReusable: (r: boolean) => void): Promise<InvokeResult> {
    const id = randomUUID();
    const { child } = sandbox;
    const timeoutMs = this.config.timeoutSeconds * 1000;
    return new Promise<InvokeResult>((resolve) => {
      const done = (result: InvokeResult, reusable: boolean) => {
        clearTimeout(timer);
        child.off("message", onMessage);
        child.off("exit", onExit);
        setReusable(reusable);
        resolve(result);
      };
      const onMessage = (m: { kind: string; id?: string; ok?: boolean; payload?: unknown; error?: { errorType: string; errorMessage: string } }) => {
        if (m.kind === "result" && m.id === id) done(m.ok ? { ok: true, payload: m.payload } : { ok: false, error: m.error! }, true);
      };
      const onExit = (code: number | null, signal: string | null) =>
        done({ ok: false, error: { errorType: "Runtime.ExitError", errorMessage: `RequestId: ${id} Error: Runtime exited with error: ${signal ? `signal: ${signal}` : `exit status ${code}`}` } }, false);
      const timer = setTimeout(
        () => done({ ok: false, error: { errorType: "Sandbox.Timedout", errorMessage: `RequestId: ${id} Error: Task timed out after ${this.config.timeoutSeconds.toFixed(2)} seconds` } }, false),
        timeoutMs,
      );
      child.on("message", onMessage);
      child.on("exit", onExit);
      child.send({ id, event, deadline: Date.now() + timeoutMs, functionName: this.config.name, arn: this.config.arn, memoryMb: this.config.memoryMb });
    });
  }

  private start(): Sandbox {
    this.coldStarts++;
    const env = {
      ...this.serviceEnv,
      AWS_LAMBDA_FUNCTION_NAME: this.config.name,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(this.config.memoryMb),
      AWS_LAMBDA_FUNCTION_VERSION: "$LATEST",
      ...(this.nodePath !== undefined ? { NODE_PATH: this.nodePath } : {}),
      ...this.config.environment,
    };
    const child = spawn(process.execPath, [`--max-old-space-size=${Math.max(64, Math.floor(this.config.memoryMb * 0.8))}`, "--input-type=module", "-e", BOOTSTRAP, this.config.bundle, this.config.handlerExport], {
      env,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on("line", (line) => this.log(`[${this.config.name}] ${line}`));
    child.on("message", (m: { kind: string; name?: string }) => {
      if (m.kind === "env-read" && m.name) this.unsetReads.add(m.name);
    });
    const ready = new Promise<void>((resolve, reject) => {
      const onReady = (m: { kind: string }) => {
        if (m.kind !== "ready") return;
        child.off("message", onReady);
        child.off("exit", onEarlyExit);
        resolve();
      };
      const onEarlyExit = (code: number | null) => reject(new ServerlessTfError(`${this.config.name}: the bundle ${this.config.bundle} failed to load (exit ${code}); its error is in the log above`));
      child.on("message", onReady);
      child.once("exit", onEarlyExit);
    });
    ready.catch(() => undefined);
    const sandbox = { child, ready };
    this.all.add(sandbox);
    child.once("exit", () => this.all.delete(sandbox));
    return sandbox;
  }

  private kill(sandbox: Sandbox): void {
    this.all.delete(sandbox);
    if (sandbox.child.exitCode === null && sandbox.child.signalCode === null) sandbox.child.kill("SIGKILL");
  }

  async close(): Promise<void> {
    this.closed = true;
    const exits = [...this.all].map((s) => new Promise<void>((resolve) => (s.child.exitCode !== null || s.child.signalCode !== null ? resolve() : s.child.once("exit", () => resolve()))));
    for (const s of [...this.all]) this.kill(s);
    this.idle.length = 0;
    await Promise.all(exits);
  }
}

/** The nearest `node_modules` folder strictly above `dir`, if any. */
function nodeModulesAbove(dir: string): string | undefined {
  for (let parent = dirname(dir); ; parent = dirname(parent)) {
    if (existsSync(join(parent, "node_modules"))) return join(parent, "node_modules");
    if (dirname(parent) === parent) return undefined;
  }
}
