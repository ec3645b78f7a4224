/**
 * ECS for the hosted stack: `RunTask`, `DescribeTasks` and `StopTask` on the template's cluster
 * and task definition, each task a local process running the container's command (the worker
 * image's entry point, `python -m serverless_tf.worker`, with the override's arguments) and its
 * environment. A task's exit is what DescribeTasks reports, as ECS reports a stopped task, so the
 * coordinator's and job-watch's ECS launcher (src/workers/ecs-launcher.ts) runs unchanged.
 *
 * moto records ECS tasks but fails RunTask for awsvpc Fargate tasks (moto 5.2.5: AttributeError
 * 'NetworkInterface' object has no attribute 'private_dns_name'), hence this agent.
 *
 * A task role override must name a role that exists in the emulator's IAM, as ECS refuses one it
 * cannot assume; the task records the role and the inline policies it had when it started. moto
 * does not evaluate policies, so the process itself runs with the emulator's credentials.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { GetRoleCommand, GetRolePolicyCommand, IAMClient, ListRolePoliciesCommand, NoSuchEntityException } from "@aws-sdk/client-iam";
import { WORKER_MODULE } from "../workers/ecs-launcher.ts";
import { projectPython, pythonChildEnv } from "../workers/paths.ts";

export interface HostedTaskDefinition {
  readonly arn: string;
  readonly family: string;
  readonly containers: readonly {
    readonly name: string;
    readonly environment: Readonly<Record<string, string>>;
    /** Seconds between SIGTERM and SIGKILL on StopTask (the template's StopTimeout; ECS's default 30). */
    readonly stopTimeoutSeconds?: number;
  }[];
}

/** An ECS API error: its type is what the SDK throws (`ClusterNotFoundException`, ...). */
export class EcsApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

interface KeyValue {
  readonly name?: string;
  readonly value?: string;
}

interface RunTaskRequest {
  readonly cluster?: string;
  readonly taskDefinition: string;
  readonly count?: number;
  readonly startedBy?: string;
  readonly group?: string;
  readonly clientToken?: string;
  readonly launchType?: string;
  readonly overrides?: { readonly taskRoleArn?: string; readonly containerOverrides?: readonly { readonly name?: string; readonly command?: readonly string[]; readonly environment?: readonly KeyValue[] }[] };
  readonly tags?: readonly { readonly key?: string; readonly value?: string }[];
}

export interface HostedTask {
  readonly taskArn: string;
  readonly clusterArn: string;
  readonly taskDefinitionArn: string;
  readonly startedBy?: string;
  readonly group?: string;
  readonly tags: readonly { readonly key?: string; readonly value?: string }[];
  readonly container: string;
  readonly stopTimeoutSeconds: number;
  /** The role the task runs as (the override's), with its inline policies as they were at start. */
  readonly role?: { readonly arn: string; readonly policies: Readonly<Record<string, unknown>> };
  /** The container's command: the image's entry point and the override's arguments. */
  readonly command: readonly string[];
  readonly child: ChildProcess;
  readonly createdAt: number;
  lastStatus: "RUNNING" | "STOPPED";
  stoppedAt?: number;
  stoppedReason?: string;
  stopCode?: string;
  exitCode?: number;
}

export class TaskAgent {
  private readonly tasks = new Map<string, HostedTask>();
  private readonly tokens = new Map<string, string>();

  constructor(
    private readonly clusters: ReadonlyMap<string, string>,
    private readonly definitions: readonly HostedTaskDefinition[],
    private readonly region: string,
    private readonly accountId: string,
    /** AWS endpoint, region and credentials: what a task's role and the region give it on AWS. */
    private readonly serviceEnv: Readonly<Record<string, string>>,
    private readonly log: (line: string) => void,
    private readonly iam: IAMClient,
  ) {}

  /** Every task started, running or stopped (a test picks one to kill). */
  list(): readonly HostedTask[] {
    return [...this.tasks.values()];
  }

  private clusterArn(cluster = "default"): string {
    for (const [name, arn] of this.clusters) if (cluster === name || cluster === arn) return arn;
    throw new EcsApiError("ClusterNotFoundException", `Cluster not found: ${cluster}`);
  }

  /** The role of a task role override, as IAM holds it; ECS's error when it does not exist. */
  private async roleOf(arn: string): Promise<HostedTask["role"]> {
    const RoleName = arn.slice(arn.lastIndexOf("/") + 1);
    try {
      await this.iam.send(new GetRoleCommand({ RoleName }));
      const { PolicyNames = [] } = await this.iam.send(new ListRolePoliciesCommand({ RoleName }));
      const documents = await Promise.all(PolicyNames.map((PolicyName) => this.iam.send(new GetRolePolicyCommand({ RoleName, PolicyName }))));
      return { arn, policies: Object.fromEntries(documents.map((d) => [d.PolicyName!, JSON.parse(decodeURIComponent(d.PolicyDocument!))])) };
    } catch (e) {
      if (!(e instanceof NoSuchEntityException)) throw e;
      throw new EcsApiError("InvalidParameterException", `ECS was unable to assume the role '${arn}' that was provided for this task.`);
    }
  }

  async runTask(request: RunTaskRequest): Promise<{ tasks: unknown[]; failures: unknown[] }> {
    const clusterArn = this.clusterArn(request.cluster);
    const definition = this.definitions.find((d) => [d.arn, d.family, d.arn.split("/").pop()].includes(request.taskDefinition));
    if (!definition) throw new EcsApiError("ClientException", `Unable to describe task definition ${request.taskDefinition}`);
    const known = request.clientToken ? this.tokens.get(request.clientToken) : undefined;
    if (known) return { tasks: [this.describe(this.tasks.get(known)!)], failures: [] };
    const role = request.overrides?.taskRoleArn ? await this.roleOf(request.overrides.taskRoleArn) : undefined;
    const started: HostedTask[] = [];
    for (let i = 0; i < (request.count ?? 1); i++) {
      const container = definition.containers[0]!;
      const override = request.overrides?.containerOverrides?.find((o) => o.name === container.name);
      if (request.overrides?.containerOverrides?.some((o) => !definition.containers.some((c) => c.name === o.name))) {
        throw new EcsApiError("InvalidParameterException", `Override for container named ${request.overrides.containerOverrides.map((o) => o.name).join(", ")} is not a container in the TaskDefinition.`);
      }
      const env = {
        ...pythonChildEnv(),
        ...this.serviceEnv,
        ...container.environment,
        ...Object.fromEntries((override?.environment ?? []).map((kv) => [kv.name ?? "", kv.value ?? ""])),
      };
      const taskArn = `arn:aws:ecs:${this.region}:${this.accountId}:task/${clusterArn.split("/").pop()}/${randomUUID().replaceAll("-", "")}`;
      const command = [projectPython, "-m", WORKER_MODULE, ...(override?.command ?? [])];
      const child = spawn(command[0]!, command.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
      const member = request.tags?.find((t) => t.key === "serverless-tf:member")?.value ?? "task";
      for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on("line", (line) => this.log(`[task ${member} ${taskArn.slice(-8)}] ${line}`));
      const task: HostedTask = {
        taskArn,
        clusterArn,
        taskDefinitionArn: definition.arn,
        ...(request.startedBy ? { startedBy: request.startedBy } : {}),
        ...(request.group ? { group: request.group } : {}),
        tags: request.tags ?? [],
        container: container.name,
        stopTimeoutSeconds: container.stopTimeoutSeconds ?? 30,
        ...(role ? { role } : {}),
        command,
        child,
        createdAt: Date.now(),
        lastStatus: "RUNNING",
      };
      child.on("exit", (code, signal) => {
        task.lastStatus = "STOPPED";
        task.stoppedAt = Date.now();
        task.exitCode = code ?? 128 + (signal === "SIGKILL" ? 9 : 15);
        task.stopCode ??= "EssentialContainerExited";
        task.stoppedReason ??= "Essential container in task exited";
      });
      child.on("error", (e) => this.log(`[task ${member}] could not start ${projectPython}: ${e.message}`));
      this.tasks.set(taskArn, task);
      started.push(task);
    }
    if (request.clientToken) this.tokens.set(request.clientToken, started[0]!.taskArn);
    return { tasks: started.map((t) => this.describe(t)), failures: [] };
  }

  describeTasks(request: { readonly cluster?: string; readonly tasks: readonly string[] }): { tasks: unknown[]; failures: unknown[] } {
    const clusterArn = this.clusterArn(request.cluster);
    const tasks: unknown[] = [];
    const failures: unknown[] = [];
    for (const arn of request.tasks) {
      const task = this.tasks.get(arn);
      if (task && task.clusterArn === clusterArn) tasks.push(this.describe(task));
      else failures.push({ arn, reason: "MISSING" });
    }
    return { tasks, failures };
  }

  /** ECS sends SIGTERM, then SIGKILL after the container's stop timeout (30 s unless its definition says). */
  stopTask(request: { readonly cluster?: string; readonly task: string; readonly reason?: string }): { task: unknown } {
    this.clusterArn(request.cluster);
    const task = this.tasks.get(request.task);
    if (!task) throw new EcsApiError("InvalidParameterException", `The referenced task was not found: ${request.task}`);
    if (task.lastStatus === "RUNNING") {
      task.stopCode = "UserInitiated";
      task.stoppedReason = request.reason ?? "Task stopped by user";
      task.child.kill("SIGTERM");
      const timer = setTimeout(() => task.child.kill("SIGKILL"), task.stopTimeoutSeconds * 1000);
      timer.unref();
      task.child.once("exit", () => clearTimeout(timer));
    }
    return { task: this.describe(task) };
  }

  private describe(task: HostedTask): unknown {
    const seconds = (ms: number | undefined) => (ms === undefined ? undefined : ms / 1000);
    return {
      taskArn: task.taskArn,
      clusterArn: task.clusterArn,
      taskDefinitionArn: task.taskDefinitionArn,
      launchType: "FARGATE",
      lastStatus: task.lastStatus,
      desiredStatus: task.lastStatus === "RUNNING" && !task.stopCode ? "RUNNING" : "STOPPED",
      startedBy: task.startedBy,
      group: task.group,
      createdAt: seconds(task.createdAt),
      stoppedAt: seconds(task.stoppedAt),
      stoppedReason: task.stoppedReason,
      stopCode: task.stopCode,
      tags: task.tags,
      ...(task.role ? { overrides: { taskRoleArn: task.role.arn } } : {}),
      containers: [{ name: task.container, lastStatus: task.lastStatus, ...(task.exitCode !== undefined ? { exitCode: task.exitCode } : {}) }],
    };
  }

  /** Stops every task still running (SIGKILL: the hosted stack is going away), and releases its IAM client. */
  async close(): Promise<void> {
    this.iam.destroy();
    const running = [...this.tasks.values()].filter((t) => t.lastStatus === "RUNNING");
    await Promise.all(
      running.map(
        (t) =>
          new Promise<void>((resolve) => {
            t.child.once("exit", () => resolve());
            t.child.kill("SIGKILL");
          }),
      ),
    );
  }
}
