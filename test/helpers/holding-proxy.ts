/**
 * An HTTP proxy in front of the AWS emulator that passes every request through until one matches,
 * then holds that one: it is never forwarded and never answered.
 *
 * It exists to kill a writer exactly between two of its writes without a test hook in product
 * code: point the writer's `AWS_ENDPOINT_URL` at the proxy, wait for {@link HoldingProxy.held},
 * then SIGKILL the writer. The held write never reached the emulator, so what the emulator holds
 * is exactly what a process killed just before that write leaves behind.
 *
 * From the held request on, every request is held, not only matching ones: a killed process
 * sends nothing more, and an SDK that timed out the held call and retried it must not get the
 * retry through while the test is about to kill it. (S3 clients of this repo have no request
 * timeout; DynamoDB clients time a silent socket out after 300 s, far longer than a test waits.)
 *
 * The request is forwarded as received: method, path and query, headers (the `Host` the client
 * signed included, so the SigV4 signature still matches) and body. Only `Expect: 100-continue` is
 * dropped: the proxy's server has already answered `100 Continue` and read the body, and `expect`
 * is one of the headers SigV4 never signs. The S3 client sends it for bodies of 2 MiB or more
 * (`expectContinueHeader` in @aws-sdk/middleware-sdk-s3).
 *
 * @example
 * const proxy = await startHoldingProxy(process.env.AWS_ENDPOINT_URL!, s3PutEndingWith("/latest.json"));
 * const writer = spawn(process.execPath, ["--import", "tsx", script], { env: { ...process.env, AWS_ENDPOINT_URL: proxy.endpoint } });
 * await proxy.held;
 * writer.kill("SIGKILL");
 * await proxy.close();
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { Agent, createServer, request, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { projectRoot } from "../../src/workers/paths.ts";

/** A request as the proxy received it, body read in full. */
export interface ProxiedRequest {
  readonly method: string;
  /** Path and query, as sent: `/bucket/models/m/latest.json?x-id=PutObject`. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export type HoldWhen = (request: ProxiedRequest) => boolean;

export interface HoldingProxy {
  /** `http://127.0.0.1:<port>`: the value to give the client as `AWS_ENDPOINT_URL`. */
  readonly endpoint: string;
  /** Resolves with the first request `holdWhen` matched. */
  readonly held: Promise<ProxiedRequest>;
  /** Requests passed on to the target so far. */
  readonly forwarded: number;
  /** Requests that arrived after the held one (and were held too). */
  readonly heldAfter: number;
  /** Stops listening and drops every connection, the held ones included. */
  close(): Promise<void>;
}

/**
 * Holds an S3 `PUT` (an object upload) whose key ends with `suffix`. The clients of this repo
 * address S3 path-style against an emulator (`forcePathStyle` in src/aws/clients.ts), so the key
 * is the URL path after `/<bucket>/`.
 */
export function s3PutEndingWith(suffix: string): HoldWhen {
  return (r) => r.method === "PUT" && decodeURIComponent(r.path.split("?")[0]!).endsWith(suffix);
}

/**
 * Holds a DynamoDB call by operation (`"TransactWriteItems"`, matched against the
 * `X-Amz-Target: DynamoDB_20120810.<operation>` header), and, if given, only when its JSON body
 * contains `bodyIncludes` (a job id, a key).
 */
export function dynamoDbCall(operation: string, bodyIncludes?: string): HoldWhen {
  return (r) => r.headers["x-amz-target"] === `DynamoDB_20120810.${operation}` && (bodyIncludes === undefined || r.body.toString("utf8").includes(bodyIncludes));
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.once("end", () => resolve(Buffer.concat(chunks)));
    req.once("error", reject);
  });
}

/** Starts the proxy on a free port of 127.0.0.1, forwarding to `target` (`http://127.0.0.1:4566`). */
export async function startHoldingProxy(target: string, holdWhen: HoldWhen): Promise<HoldingProxy> {
  const upstream = new URL(target);
  if (upstream.protocol !== "http:") throw new Error(`the holding proxy forwards to http:// endpoints only. Received: target=${target}`);
  const agent = new Agent({ keepAlive: true });
  const sockets = new Set<Socket>();
  let holding = false;
  let forwarded = 0;
  let heldAfter = 0;
  let onHeld!: (r: ProxiedRequest) => void;
  const held = new Promise<ProxiedRequest>((resolve) => (onHeld = resolve));

  const server = createServer(async (req, res) => {
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch {
      return; // the client went away mid-body (it was killed): nothing to forward
    }
    const received: ProxiedRequest = { method: req.method ?? "GET", path: req.url ?? "/", headers: req.headers, body };
    if (holding) {
      heldAfter += 1;
      return;
    }
    if (holdWhen(received)) {
      holding = true;
      onHeld(received);
      return;
    }
    forwarded += 1;
    const { expect: _answered, ...headers } = req.headers;
    const out = request({ host: upstream.hostname, port: upstream.port, method: received.method, path: received.path, headers, agent }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.statusMessage, up.rawHeaders);
      up.pipe(res);
    });
    out.once("error", (e) => {
      if (res.headersSent) res.destroy(e);
      else res.writeHead(502, { "content-type": "text/plain" }).end(`holding proxy: ${target} failed: ${e.message}`);
    });
    out.end(body);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("the holding proxy got no port");

  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    held,
    get forwarded() {
      return forwarded;
    },
    get heldAfter() {
      return heldAfter;
    },
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      agent.destroy();
      await closed;
    },
  };
}

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Starts `command args` in the project root with `env`, collecting its output. */
export function startChild(command: string, args: readonly string[], env: NodeJS.ProcessEnv): { child: ChildProcess; exited: Promise<ChildExit> } {
  const child = spawn(command, args, { cwd: projectRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = once(child, "close").then(([code, signal]) => ({ code, signal, stdout, stderr }) as ChildExit);
  return { child, exited };
}

/**
 * Runs a writer process whose AWS endpoint is a holding proxy in front of `target`, waits until
 * the write `holdWhen` matches is held, and SIGKILLs the writer there. Fails when the writer exits
 * first or makes no such write within `waitMs`.
 */
export async function killWriterAtWrite(
  target: string,
  holdWhen: HoldWhen,
  writer: { readonly command: string; readonly args: readonly string[]; readonly env: NodeJS.ProcessEnv },
  waitMs = 30_000,
): Promise<{ held: ProxiedRequest; exit: ChildExit; forwarded: number; heldAfter: number }> {
  const proxy = await startHoldingProxy(target, holdWhen);
  const run = startChild(writer.command, writer.args, { ...writer.env, AWS_ENDPOINT_URL: proxy.endpoint });
  try {
    const held = await Promise.race([
      proxy.held,
      run.exited.then((e) => {
        throw new Error(`the writer exited (code ${e.code}) before its write was held:\n${e.stderr}`);
      }),
      sleep(waitMs, undefined, { ref: false }).then(() => {
        throw new Error(`the writer made no matching write within ${waitMs} ms`);
      }),
    ]);
    run.child.kill("SIGKILL");
    const exit = await run.exited;
    return { held, exit, forwarded: proxy.forwarded, heldAfter: proxy.heldAfter };
  } finally {
    run.child.kill("SIGKILL"); // a no-op once it exited; frees the test if waiting failed
    await proxy.close();
  }
}
