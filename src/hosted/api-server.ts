/**
 * The hosted stack's own AWS endpoint, for the two services the emulator does not run: the Lambda
 * API (Invoke, and event source mappings created at run time) over the template's functions, and
 * ECS (RunTask, DescribeTasks, StopTask) over the task agent. Functions reach it through
 * `AWS_ENDPOINT_URL_LAMBDA` / `AWS_ENDPOINT_URL_ECS`, a user's program through the deployed-stack
 * runtime, so both sides make the SDK calls they make on AWS.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ThrottledError, type HostedFunction } from "./function-host.ts";
import { EcsApiError, type TaskAgent } from "./task-agent.ts";

/** An event source mapping as the Lambda API describes it. */
export interface MappingConfig {
  readonly UUID: string;
  readonly EventSourceArn: string;
  readonly FunctionArn: string;
  readonly BatchSize: number;
  readonly MaximumBatchingWindowInSeconds: number;
  readonly FunctionResponseTypes: readonly string[];
  readonly ScalingConfig?: { readonly MaximumConcurrency?: number };
  readonly State: "Enabled" | "Deleting";
}

export interface LambdaControlPlane {
  functionNamed(nameOrArn: string): HostedFunction | undefined;
  createMapping(request: { EventSourceArn: string; FunctionName: string; BatchSize?: number; MaximumBatchingWindowInSeconds?: number; FunctionResponseTypes?: string[]; ScalingConfig?: { MaximumConcurrency?: number } }): Promise<MappingConfig>;
  listMappings(filter: { functionName?: string; eventSourceArn?: string }): readonly MappingConfig[];
  deleteMapping(uuid: string): Promise<MappingConfig | undefined>;
}

const ECS_TARGET = "AmazonEC2ContainerServiceV20141113.";

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function send(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  const text = typeof payload === "string" ? payload : JSON.stringify(payload);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

function lambdaError(res: ServerResponse, status: number, type: string, message: string): void {
  send(res, status, { Type: "User", message }, { "x-amzn-errortype": type });
}

export class HostedApiServer {
  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
  ) {}

  static async start(lambda: LambdaControlPlane, ecs: TaskAgent, log: (line: string) => void): Promise<HostedApiServer> {
    const server = createServer((req, res) => {
      void handle(req, res).catch((e: unknown) => {
        log(`[hosted api] ${(e as Error).stack ?? String(e)}`);
        if (!res.headersSent) send(res, 500, { message: (e as Error).message }, { "x-amzn-errortype": "ServiceException" });
      });
    });
    const handle = async (req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const text = await body(req);
      const target = String(req.headers["x-amz-target"] ?? "");
      if (target.startsWith(ECS_TARGET)) {
        const input = text ? JSON.parse(text) : {};
        try {
          const op = target.slice(ECS_TARGET.length);
          if (op === "RunTask") return send(res, 200, await ecs.runTask(input));
          if (op === "DescribeTasks") return send(res, 200, ecs.describeTasks(input));
          if (op === "StopTask") return send(res, 200, ecs.stopTask(input));
          return send(res, 400, { __type: "UnsupportedOperation", message: `the hosted stack does not emulate ECS ${op}` });
        } catch (e) {
          if (e instanceof EcsApiError) return send(res, 400, { __type: e.type, message: e.message });
          throw e;
        }
      }
      const invoke = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(url.pathname);
      if (invoke && req.method === "POST") {
        const name = decodeURIComponent(invoke[1]!);
        const fn = lambda.functionNamed(name);
        if (!fn) return lambdaError(res, 404, "ResourceNotFoundException", `Function not found: ${name}`);
        const event = text ? JSON.parse(text) : {};
        const type = String(req.headers["x-amz-invocation-type"] ?? "RequestResponse");
        if (type === "DryRun") return send(res, 204, "");
        const run = fn.invoke(event);
        if (type === "Event") {
          run.then((r) => !r.ok && log(`[${fn.config.name}] async invocation failed: ${r.error.errorType}: ${r.error.errorMessage}`), (e: unknown) => log(`[${fn.config.name}] ${(e as Error).message}`));
          return send(res, 202, "");
        }
        try {
          const result = await run;
          return result.ok ? send(res, 200, result.payload, { "x-amz-executed-version": "$LATEST" }) : send(res, 200, result.error, { "x-amz-function-error": "Unhandled", "x-amz-executed-version": "$LATEST" });
        } catch (e) {
          if (e instanceof ThrottledError) return lambdaError(res, 429, "TooManyRequestsException", e.message);
          throw e;
        }
      }
      if (url.pathname.replace(/\/$/, "") === "/2015-03-31/event-source-mappings") {
        if (req.method === "POST") {
          const request = JSON.parse(text);
          if (!lambda.functionNamed(request.FunctionName)) return lambdaError(res, 404, "ResourceNotFoundException", `Function not found: ${request.FunctionName}`);
          return send(res, 202, await lambda.createMapping(request));
        }
        if (req.method === "GET") {
          const functionName = url.searchParams.get("FunctionName") ?? undefined;
          const eventSourceArn = url.searchParams.get("EventSourceArn") ?? undefined;
          return send(res, 200, { EventSourceMappings: lambda.listMappings({ ...(functionName ? { functionName } : {}), ...(eventSourceArn ? { eventSourceArn } : {}) }) });
        }
      }
      const mapping = /^\/2015-03-31\/event-source-mappings\/([^/]+)$/.exec(url.pathname);
      if (mapping && req.method === "DELETE") {
        const deleted = await lambda.deleteMapping(decodeURIComponent(mapping[1]!));
        return deleted ? send(res, 202, deleted) : lambdaError(res, 404, "ResourceNotFoundException", `The resource you requested does not exist. (mapping ${mapping[1]})`);
      }
      return send(res, 400, { message: `the hosted stack does not emulate ${req.method} ${url.pathname}${target ? ` (${target})` : ""}` }, { "x-amzn-errortype": "UnsupportedOperation" });
    };
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return new HostedApiServer(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
