/**
 * The one emulator bootstrap: moto server (S3, SQS and DynamoDB in one process) on the
 * LocalStack port, or on a free port when 4566 is taken. Used by the test suite and by the
 * local runtime when no `AWS_ENDPOINT_URL` is given.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { projectPython } from "../workers/paths.ts";
import { ServerlessTfError } from "../errors.ts";

export const LOCALSTACK_PORT = 4566;

export class EmulatorError extends ServerlessTfError {}

export interface RunningEmulator {
  readonly endpoint: string;
  readonly pid: number;
  stop(): Promise<void>;
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Resolves once anything answers HTTP at `endpoint`, or throws after `timeoutMs`. */
export async function waitForEndpoint(endpoint: string, timeoutMs = 30_000, isAlive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (!isAlive()) throw new EmulatorError(`the emulator process exited before ${endpoint} answered`);
    try {
      const response = await fetch(endpoint, { signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      return;
    } catch (e) {
      lastError = e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new EmulatorError(`no AWS emulator answered at ${endpoint} within ${timeoutMs} ms`, { cause: lastError });
}

/**
 * Starts moto server beside the project Python and waits until it answers.
 *
 * @example
 * const emulator = await startEmulator();
 * const runtime = await LocalRuntime.start({ endpoint: emulator.endpoint });
 * // ... run jobs ...
 * await emulator.stop();
 */
export async function startEmulator(options: { port?: number; quiet?: boolean } = {}): Promise<RunningEmulator> {
  // moto server is installed beside the project Python (python/requirements.lock).
  const motoServer = join(dirname(projectPython), "moto_server");
  if (!existsSync(motoServer)) {
    throw new EmulatorError(`${motoServer} is missing: in a checkout run \`npm run setup\` (npm test and npm run demo do it for you); with the installed package point SERVERLESS_TF_PYTHON at a Python that has python/requirements.lock installed, or AWS_ENDPOINT_URL at a running emulator`);
  }
  const port = options.port ?? ((await portIsFree(LOCALSTACK_PORT)) ? LOCALSTACK_PORT : await freePort());
  const child: ChildProcess = spawn(motoServer, ["-H", "127.0.0.1", "-p", String(port)], {
    stdio: ["ignore", options.quiet === false ? "inherit" : "ignore", options.quiet === false ? "inherit" : "ignore"],
    env: { ...process.env, MOTO_ALLOW_NONEXISTENT_REGION: "true" },
  });
  let exited = false;
  child.once("exit", () => (exited = true));
  // The emulator must not keep a finished program alive, nor outlive it.
  child.unref();
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitForEndpoint(endpoint, 30_000, () => !exited);
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return {
    endpoint,
    pid: child.pid ?? -1,
    async stop() {
      process.removeListener("exit", killOnExit);
      if (exited) return;
      // The child is unref()-ed, so its exit event alone may never come back to a loop with nothing
      // else to do: settle on the exit or, failing that, once SIGKILL has had a moment to land.
      const done = new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        const kill = setTimeout(() => {
          child.kill("SIGKILL");
          setTimeout(resolve, 500);
        }, 5_000);
        child.once("exit", () => clearTimeout(kill));
      });
      child.kill("SIGTERM");
      await done;
    },
  };
}
