/**
 * The stack as deployed, run locally with no Docker: the CDK app is synthesized, its template
 * deployed onto the AWS emulator (src/hosted/deploy.ts), and each of its functions run from the
 * bundle the template points at, with the template's environment, memory, timeout and reserved
 * concurrency, a zip function with its layers' files and no module from anywhere else
 * (src/hosted/function-host.ts), fed by the template's event source mappings with
 * their batch size, batching window and partial batch responses. Workers started by the
 * functions' RunTask calls run as local processes (src/hosted/task-agent.ts). A program reaches it
 * as it reaches a deployed stack: through its outputs, with `StackRuntime`.
 *
 * Not emulated, and listed in infra/README.md: IAM evaluation, VPC networking and endpoints,
 * CloudWatch Logs, Fargate scheduling and capacity.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, extname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { SQSBatchResponse } from "aws-lambda";
import { GetQueueUrlCommand } from "@aws-sdk/client-sqs";
import { IAMClient } from "@aws-sdk/client-iam";
import { awsSettingsFromEnv, createAwsClients, destroyAwsClients, type AwsClients, type AwsSettings } from "../aws/clients.ts";
import { StackRuntime } from "../runtime/stack-runtime.ts";
import { ServerlessTfError } from "../errors.ts";
import { startEmulator, type RunningEmulator } from "../runtime/emulator.ts";
import { startingBatches } from "../resources/definitions.ts";
import { SqsEventSource } from "../runtime/event-source.ts";
import { projectPython, projectRoot } from "../workers/paths.ts";
import { HostedApiServer, type LambdaControlPlane, type MappingConfig } from "./api-server.ts";
import { deployTemplate, type DeployedTemplate } from "./deploy.ts";
import { HostedFunction, type HostedFunctionConfig } from "./function-host.ts";
import { TaskAgent, type HostedTaskDefinition } from "./task-agent.ts";
import { resolveValue, resourcesOfType, templateFunctions, templateLayers, templateMappings, TemplateError, type CfnTemplate } from "./template.ts";

export interface HostedStackOptions {
  /** An AWS emulator to deploy onto; default `AWS_ENDPOINT_URL`, else a moto server started here. */
  readonly endpoint?: string;
  /** CDK context for the app (infra/app.ts: `prefix`, `dataBuckets`, ...). */
  readonly context?: Readonly<Record<string, string>>;
  /** Where function and task log lines go; default nowhere. */
  readonly log?: (line: string) => void;
}

/** A function of the stack returned an error to its event source mapping. */
export class FunctionError extends ServerlessTfError {}

interface RunningMapping {
  readonly config: MappingConfig;
  readonly source: SqsEventSource;
}

/** The image's ENV lines (its last stage), with the paths that exist only in the image mapped to this machine's. */
function imageEnvironment(dockerfile: string, tmp: string): Record<string, string> {
  const lines = readFileSync(dockerfile, "utf8").replace(/\\\n/g, " ").split("\n");
  const lastStage = lines.map((l, i) => (/^FROM\s/i.test(l) ? i : -1)).filter((i) => i >= 0).pop() ?? 0;
  const env: Record<string, string> = {};
  for (const line of lines.slice(lastStage)) {
    const m = /^ENV\s+(.*)$/i.exec(line.trim());
    if (!m) continue;
    for (const pair of m[1]!.trim().split(/\s+/)) {
      const eq = pair.indexOf("=");
      if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  const local: Record<string, string> = { SERVERLESS_TF_PYTHON: projectPython, SERVERLESS_TF_ROOT: projectRoot, KERAS_HOME: join(tmp, ".keras") };
  for (const key of Object.keys(env)) if (key in local) env[key] = local[key]!;
  return env;
}

export class HostedStack implements LambdaControlPlane {
  private readonly mappings = new Map<string, RunningMapping>();
  private closing = false;

  private constructor(
    readonly template: CfnTemplate,
    readonly deployed: DeployedTemplate,
    /** The AWS emulator's endpoint (S3, SQS, DynamoDB). */
    readonly awsEndpoint: string,
    readonly functions: ReadonlyMap<string, HostedFunction>,
    readonly tasks: TaskAgent,
    readonly api: HostedApiServer,
    private readonly clients: AwsClients,
    private readonly tmp: string,
    private readonly emulator: RunningEmulator | undefined,
    private readonly log: (line: string) => void,
  ) {}

  /** The stack's outputs, resolved: what `cdk deploy` prints and `StackRuntime.fromStack` reads. */
  get outputs(): Readonly<Record<string, string>> {
    return this.deployed.outputs;
  }

  /** Resource types of the template the hosted stack does not emulate, with their counts. */
  get notEmulated(): Readonly<Record<string, number>> {
    return this.deployed.notEmulated;
  }

  static async start(options: HostedStackOptions = {}): Promise<HostedStack> {
    const log = options.log ?? (() => undefined);
    let emulator: RunningEmulator | undefined;
    const awsEndpoint = options.endpoint ?? process.env.AWS_ENDPOINT_URL ?? (emulator = await startEmulator()).endpoint;
    const tmp = await mkdtemp(join(tmpdir(), "stf-hosted-"));
    const fromEnv = awsSettingsFromEnv(process.env);
    const credentials = fromEnv.credentials ?? { accessKeyId: "test", secretAccessKey: "test" };
    const clients = createAwsClients({ ...fromEnv, endpoints: { s3: awsEndpoint, sqs: awsEndpoint, dynamodb: awsEndpoint }, credentials });
    // IAM for the worker boundary policy and the job roles the coordinator makes (the task agent owns it).
    const iam = new IAMClient({ region: fromEnv.region, endpoint: awsEndpoint, credentials });
    try {
      const { template, assemblyDir, stackName } = await synthesize(join(tmp, "cdk.out"), options.context ?? {});
      const pseudo = { region: fromEnv.region, accountId: "000000000000", stackName };
      const deployed = await deployTemplate(clients, iam, template, pseudo);
      const resolve = (value: unknown, path: string) => resolveValue(value, deployed.physical, pseudo, path);

      const base = {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: process.env.HOME ?? tmp,
        TMPDIR: tmp,
        AWS_REGION: fromEnv.region,
        AWS_DEFAULT_REGION: fromEnv.region,
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        AWS_ENDPOINT_URL: awsEndpoint,
      };
      // The Lambda and ECS APIs are the hosted stack's own; its port is known once it listens.
      const control: { stack?: HostedStack } = {};
      const plane: LambdaControlPlane = {
        functionNamed: (n) => control.stack!.functionNamed(n),
        createMapping: (r) => control.stack!.createMapping(r),
        listMappings: (f) => control.stack!.listMappings(f),
        deleteMapping: (u) => control.stack!.deleteMapping(u),
      };
      const serviceEnv: Record<string, string> = { ...base };
      const clusters = new Map(resourcesOfType(template, "AWS::ECS::Cluster").map(([id]) => [deployed.physical.get(id)!.ref, deployed.physical.get(id)!.attrs!.Arn!]));
      const definitions: HostedTaskDefinition[] = resourcesOfType(template, "AWS::ECS::TaskDefinition").map(([id, r]) => ({
        arn: deployed.physical.get(id)!.ref,
        family: String(r.Properties?.Family ?? id),
        containers: ((r.Properties?.ContainerDefinitions ?? []) as { Name: string; StopTimeout?: number; Environment?: { Name: string; Value: unknown }[] }[]).map((c, i) => ({
          name: c.Name,
          ...(c.StopTimeout !== undefined ? { stopTimeoutSeconds: Number(c.StopTimeout) } : {}),
          environment: Object.fromEntries((c.Environment ?? []).map((e) => [e.Name, String(resolve(e.Value, `${id}.ContainerDefinitions[${i}].Environment.${e.Name}`))])),
        })),
      }));
      const tasks = new TaskAgent(clusters, definitions, fromEnv.region, pseudo.accountId, serviceEnv, log, iam);
      const api = await HostedApiServer.start(plane, tasks, log);
      Object.assign(serviceEnv, { AWS_ENDPOINT_URL_LAMBDA: api.endpoint, AWS_ENDPOINT_URL_ECS: api.endpoint });

      const functions = new Map<string, HostedFunction>();
      const layerAssets = templateLayers(template);
      for (const fn of templateFunctions(template)) {
        const physical = deployed.physical.get(fn.logicalId)!;
        const [module, exportName] = fn.handler.split(".") as [string, string];
        let bundle: string;
        let layers: string[] | undefined;
        let imageEnv: Record<string, string> = {};
        if (fn.packageType === "Zip") {
          if (!fn.assetPath) throw new TemplateError(`${fn.logicalId}.Code`, "a zip function without an asset path (aws:asset:path metadata)");
          // The assembly is under the hosted stack's own temporary folder, outside any project: the
          // staged zip and layers are all the function can load, as on Lambda.
          bundle = join(assemblyDir, fn.assetPath, `${module}.mjs`);
          layers = fn.layers.map((id) => join(assemblyDir, layerAssets.get(id)!));
        } else {
          // The image holds the bundle scripts/build.ts writes (functions/<name>/Dockerfile copies it) and a Python with the worker package.
          if (!fn.dockerfilePath) throw new TemplateError(`${fn.logicalId}.Code`, "an image function without its Dockerfile (aws:asset:dockerfile-path metadata)");
          bundle = join(projectRoot, "dist", "functions", basename(dirname(fn.dockerfilePath)), "index.mjs");
          imageEnv = imageEnvironment(join(projectRoot, fn.dockerfilePath), tmp);
        }
        const environment = { ...imageEnv, ...Object.fromEntries(Object.entries(fn.environment).map(([k, v]) => [k, String(resolve(v, `${fn.logicalId}.Environment.${k}`))])) };
        const config: HostedFunctionConfig = {
          name: physical.ref,
          arn: physical.attrs!.Arn!,
          bundle,
          ...(layers ? { layers } : {}),
          handlerExport: fn.packageType === "Zip" ? exportName : "handler",
          environment,
          timeoutSeconds: fn.timeoutSeconds,
          memoryMb: fn.memoryMb,
          ...(fn.reservedConcurrency !== undefined ? { reservedConcurrency: fn.reservedConcurrency } : {}),
        };
        functions.set(fn.logicalId, new HostedFunction(config, serviceEnv, log));
      }
      const stack = new HostedStack(template, deployed, awsEndpoint, functions, tasks, api, clients, tmp, emulator, log);
      control.stack = stack;
      for (const m of templateMappings(template)) {
        await stack.createMapping({
          EventSourceArn: String(resolve(m.eventSourceArn, `${m.logicalId}.EventSourceArn`)),
          FunctionName: deployed.physical.get(m.functionRef)!.ref,
          BatchSize: m.batchSize,
          MaximumBatchingWindowInSeconds: m.maxBatchingWindowSeconds,
          FunctionResponseTypes: m.reportBatchItemFailures ? ["ReportBatchItemFailures"] : [],
          ...(m.maxConcurrency ? { ScalingConfig: { MaximumConcurrency: m.maxConcurrency } } : {}),
        });
      }
      return stack;
    } catch (e) {
      destroyAwsClients(clients);
      iam.destroy();
      await emulator?.stop();
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /** A function by its physical name, its ARN, or its logical id. */
  functionNamed(nameOrArn: string): HostedFunction | undefined {
    const name = nameOrArn.startsWith("arn:") ? nameOrArn.split(":")[6] ?? "" : nameOrArn;
    for (const [id, fn] of this.functions) if (fn.config.name === name || id === name) return fn;
    return undefined;
  }

  /** A function of the stack by its kind (`coordinator`, `shard-feed`, `inference`, ...), through the stack's `<Kind>FunctionName` output. */
  functionOf(kind: string): HostedFunction {
    const name = this.outputs[`${kind.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase())}FunctionName`];
    const fn = name ? this.functionNamed(name) : undefined;
    if (!fn) throw new ServerlessTfError(`the stack has no ${kind} function (no output ${kind}FunctionName naming one)`);
    return fn;
  }

  async createMapping(request: Parameters<LambdaControlPlane["createMapping"]>[0]): Promise<MappingConfig> {
    const fn = this.functionNamed(request.FunctionName);
    if (!fn) throw new ServerlessTfError(`Function not found: ${request.FunctionName}`);
    const queueName = request.EventSourceArn.split(":").pop()!;
    const { QueueUrl } = await this.clients.sqs.send(new GetQueueUrlCommand({ QueueName: queueName }));
    const config: MappingConfig = {
      UUID: randomUUID(),
      EventSourceArn: request.EventSourceArn,
      FunctionArn: fn.config.arn,
      BatchSize: request.BatchSize ?? 10,
      MaximumBatchingWindowInSeconds: request.MaximumBatchingWindowInSeconds ?? 0,
      FunctionResponseTypes: request.FunctionResponseTypes ?? [],
      ...(request.ScalingConfig ? { ScalingConfig: request.ScalingConfig } : {}),
      State: "Enabled",
    };
    const batches = startingBatches(fn.concurrency, request.ScalingConfig?.MaximumConcurrency ?? Number.POSITIVE_INFINITY);
    const source = new SqsEventSource(
      this.clients,
      QueueUrl!,
      async (event) => {
        const result = await fn.invoke(event);
        if (!result.ok) throw new FunctionError(`${fn.config.name}: ${result.error.errorType}: ${result.error.errorMessage}`);
        return result.payload as SQSBatchResponse;
      },
      {
        batchSize: config.BatchSize,
        maxBatchingWindowSeconds: config.MaximumBatchingWindowInSeconds,
        reportBatchItemFailures: config.FunctionResponseTypes.includes("ReportBatchItemFailures"),
        concurrency: batches,
        onError: (e) => !this.closing && this.log(`[mapping ${queueName} -> ${fn.config.name}] ${(e as Error).message}`),
      },
    );
    source.start();
    this.mappings.set(config.UUID, { config, source });
    return config;
  }

  listMappings(filter: { functionName?: string; eventSourceArn?: string }): readonly MappingConfig[] {
    const fn = filter.functionName ? this.functionNamed(filter.functionName) : undefined;
    return [...this.mappings.values()]
      .map((m) => m.config)
      .filter((c) => (!filter.functionName || c.FunctionArn === fn?.config.arn) && (!filter.eventSourceArn || c.EventSourceArn === filter.eventSourceArn));
  }

  async deleteMapping(uuid: string): Promise<MappingConfig | undefined> {
    const m = this.mappings.get(uuid);
    if (!m) return undefined;
    this.mappings.delete(uuid);
    await m.source.stop();
    return { ...m.config, State: "Deleting" };
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.mappings.values()].map((m) => m.source.stop()));
    this.mappings.clear();
    await this.tasks.close();
    await Promise.all([...this.functions.values()].map((f) => f.close()));
    await this.api.close();
    destroyAwsClients(this.clients);
    await this.emulator?.stop();
    await rm(this.tmp, { recursive: true, force: true });
  }
}

/**
 * A local copy of the stack as synthesized, and the deployed-stack runtime on it, as a program on
 * AWS gets one from `StackRuntime.fromStack`; closing the runtime stops the stack. Needs the
 * development tools (aws-cdk-lib, cdk-nag) and the built function bundles (`npm run build`).
 *
 * @example
 * const { runtime } = await hostedStackRuntime(); // the demos' --stack
 * await new TFEstimator().withRuntime(runtime) ... .fit(table);
 * await runtime.close();
 */
export async function hostedStackRuntime(options: HostedStackOptions = {}): Promise<{ runtime: StackRuntime; stack: HostedStack }> {
  const stack = await HostedStack.start(options);
  const fromEnv = awsSettingsFromEnv(process.env);
  const aws: AwsSettings = {
    ...fromEnv,
    endpoints: { s3: stack.awsEndpoint, sqs: stack.awsEndpoint, dynamodb: stack.awsEndpoint },
    credentials: fromEnv.credentials ?? { accessKeyId: "test", secretAccessKey: "test" },
  };
  const runtime = StackRuntime.fromOutputs(stack.outputs, {
    aws,
    lambdaEndpoint: stack.api.endpoint,
    description: `hosted stack (AWS endpoint ${stack.awsEndpoint}, Lambda and ECS at ${stack.api.endpoint})`,
    onClose: () => stack.close(),
  });
  return { runtime, stack };
}

/** Synthesizes the CDK app (infra/app.ts) into `outdir`. */
async function synthesize(outdir: string, context: Readonly<Record<string, string>>): Promise<{ template: CfnTemplate; assemblyDir: string; stackName: string }> {
  const here = fileURLToPath(import.meta.url);
  const appModule = join(dirname(here), "..", "..", "infra", `app${extname(here)}`);
  let modules: [typeof import("aws-cdk-lib"), typeof import("../../infra/app.ts")];
  try {
    modules = await Promise.all([import("aws-cdk-lib"), import(pathToFileURL(appModule).href) as Promise<typeof import("../../infra/app.ts")>]);
  } catch (e) {
    throw new ServerlessTfError(
      `the hosted stack synthesizes the CDK app (${appModule}) and could not load it: ${(e as Error).message}. Install its tools beside serverless-tf: npm install --save-dev aws-cdk-lib constructs cdk-nag`,
    );
  }
  const [{ App }, { buildApp }] = modules;
  const { app, stack } = buildApp(new App({ outdir, context: { ...context } }));
  const assembly = app.synth();
  return { template: assembly.getStackByName(stack.stackName).template as CfnTemplate, assemblyDir: assembly.directory, stackName: stack.stackName };
}
