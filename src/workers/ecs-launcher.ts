/**
 * Launches workers as ECS Fargate tasks: one `RunTask` per member, on the task definition the
 * stack builds from `python/Dockerfile`. The container's entry point is
 * `python -m serverless_tf.worker`, so the override carries only the arguments, the same ones
 * the process launcher passes (`test/unit/ecs-launcher.test.ts` checks both against the Dockerfile).
 */
import { DescribeTasksCommand, ECSClient, RunTaskCommand, StopTaskCommand, type RunTaskCommandOutput, type Task } from "@aws-sdk/client-ecs";
import { IAMClient } from "@aws-sdk/client-iam";
import { ConfigError, ServerlessTfError } from "../errors.ts";
import { WORKER_CAPACITIES, isWorkerCapacity, type JobSpec, type WorkerCapacity } from "../protocol/spec.ts";
import { ENV, WORKER_CONTAINER } from "../resources/definitions.ts";
import type { LaunchedWorkers, WorkerExit, WorkerLauncher, WorkerProgress } from "./launcher.ts";
import { type MemberRef } from "../protocol/names.ts";
import { type WorkerHandle } from "../protocol/watch-message.ts";
import { memberKey } from "../protocol/names.ts";
import { JobRoles, resourcesFromBoundary, type JobRoleResources } from "./job-role.ts";

/** The worker module both launchers run (the Dockerfile's ENTRYPOINT runs it too). */
export const WORKER_MODULE = "serverless_tf.worker";

/** The worker's command-line arguments after `python -m serverless_tf.worker` (attempt N meets at barrier `start-N`). */
export function workerArgs(jobId: string, member: MemberRef, attempt = 0): string[] {
  return ["--job-id", jobId, "--role", member.role, "--index", String(member.index), "--attempt", String(attempt)];
}

export interface EcsLauncherConfig {
  readonly cluster: string;
  /** Family, family:revision or ARN. */
  readonly taskDefinition: string;
  readonly container: string;
  readonly subnets: readonly string[];
  readonly securityGroups: readonly string[];
  /** Environment for every worker (table, bucket); names follow `src/resources/definitions.ts`. */
  readonly env: Readonly<Record<string, string>>;
  /** Where each job's task role is made (src/workers/job-role.ts): every task runs as its job's role. */
  readonly jobRoles: JobRoleResources;
  /** What a job's tasks run on when its spec says nothing (`SERVERLESS_TF_WORKER_CAPACITY`); default Fargate. */
  readonly defaultCapacity?: WorkerCapacity;
  /** The stack's GPU workers (the construct's `gpuWorkers`): their task definition and capacity provider; absent: none. */
  readonly gpu?: GpuPlacement;
  /** How often `DescribeTasks` looks for stopped members; 0 turns exit polling off. Default 10 s. */
  readonly pollIntervalMs?: number;
  /** How long RunTask is retried while a new job role is not yet assumable (IAM is eventually consistent). Default 60 s. */
  readonly roleSettleMs?: number;
}

export interface GpuPlacement {
  /** The GPU build of the worker image, on the EC2 launch type: family, family:revision or ARN. */
  readonly taskDefinition: string;
  /** The cluster's capacity provider of GPU instances; it scales them from zero. */
  readonly capacityProvider: string;
}

export class EcsLaunchError extends ServerlessTfError {
  constructor(
    readonly member: MemberRef,
    readonly reasons: readonly string[],
  ) {
    super(`RunTask started no task for ${memberKey(member)}: ${reasons.join("; ") || "no reason given"}. Check the cluster's capacity and the subnets, then relaunch.`);
  }
}

const list = (value: string | undefined) => (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);

/**
 * The ECS launcher's configuration from the environment the stack gives the coordinator; the
 * workers get the table and bucket the coordinator itself resolved.
 *
 * @example
 * ecsLauncherConfigFromEnv(depsFromEnv().config, { SERVERLESS_TF_ECS_CLUSTER: "c", SERVERLESS_TF_ECS_TASK_DEFINITION: "td",
 *   SERVERLESS_TF_ECS_SUBNETS: "subnet-1,subnet-2", SERVERLESS_TF_ECS_SECURITY_GROUPS: "sg-1" });
 */
export function ecsLauncherConfigFromEnv(names: { readonly tableName: string; readonly bucket: string }, env: Readonly<Record<string, string | undefined>> = process.env): EcsLauncherConfig {
  const required = (name: string, what: string): string => {
    const value = env[name];
    if (!value) throw new ConfigError(name, value ?? null, what);
    return value;
  };
  return {
    cluster: required(ENV.ecsCluster, "the ECS cluster name or ARN the workers run on"),
    taskDefinition: required(ENV.ecsTaskDefinition, "the worker task definition (family, family:revision or ARN)"),
    container: env[ENV.ecsContainer] || WORKER_CONTAINER,
    subnets: list(required(ENV.ecsSubnets, "a comma-separated list of subnet ids for the worker tasks")),
    securityGroups: list(required(ENV.ecsSecurityGroups, "a comma-separated list of security group ids for the worker tasks")),
    // As resolved by the stage config (defaults included), like the process launcher's.
    env: { [ENV.table]: names.tableName, [ENV.bucket]: names.bucket },
    ...(env[ENV.workerCapacity] ? { defaultCapacity: capacityOf(env[ENV.workerCapacity]!) } : {}),
    ...(env[ENV.ecsGpuTaskDefinition]
      ? { gpu: { taskDefinition: env[ENV.ecsGpuTaskDefinition]!, capacityProvider: required(ENV.ecsGpuCapacityProvider, "the capacity provider of the GPU instances (set with the GPU task definition)") } }
      : {}),
    jobRoles: resourcesFromBoundary(
      required(ENV.jobRoleBoundary, "the ARN of the managed policy that bounds every job role (the stack's WorkerBoundary)"),
      required("AWS_REGION", "the region the workers run in (Lambda sets it)"),
      names.tableName,
    ),
  };
}


function capacityOf(value: string): WorkerCapacity {
  if (!isWorkerCapacity(value)) throw new ConfigError(ENV.workerCapacity, value, WORKER_CAPACITIES.join(" or "));
  return value;
}

/** A job asked for GPU workers from a stack that has none. */
export class NoGpuWorkersError extends ConfigError {
  constructor(jobId: string) {
    super(`workerCapacity of job ${jobId}`, "gpu", '"fargate" or "fargate-spot": this stack has no GPU workers; give the ServerlessTf construct a gpuWorkers prop to add them');
  }
}

/**
 * RunTask's task definition and placement for a capacity: the Fargate launch type, the cluster's
 * FARGATE_SPOT capacity provider, or the GPU task definition on the GPU instances' capacity
 * provider (a launch type and a capacity provider strategy are exclusive in one request).
 */
export function placementOf(capacity: WorkerCapacity, taskDefinition: string, gpu: GpuPlacement | undefined, jobId: string) {
  if (capacity === "gpu") {
    if (!gpu) throw new NoGpuWorkersError(jobId);
    return { taskDefinition: gpu.taskDefinition, capacityProviderStrategy: [{ capacityProvider: gpu.capacityProvider, weight: 1 }] };
  }
  return capacity === "fargate-spot" ? { taskDefinition, capacityProviderStrategy: [{ capacityProvider: "FARGATE_SPOT", weight: 1 }] } : { taskDefinition, launchType: "FARGATE" as const };
}

/** ECS's refusal of a task role that IAM has not yet made assumable everywhere. */
const ROLE_NOT_READY = /unable to assume the role/i;

export class EcsLauncher implements WorkerLauncher {
  private readonly roles: JobRoles;

  constructor(
    private readonly config: EcsLauncherConfig,
    private readonly ecs: ECSClient = new ECSClient({}),
    iam: IAMClient = new IAMClient({}),
  ) {
    this.roles = new JobRoles(config.jobRoles, iam);
  }

  checkCapacity(jobId: string, capacity: WorkerCapacity | undefined): void {
    placementOf(capacity ?? this.config.defaultCapacity ?? "fargate", this.config.taskDefinition, this.config.gpu, jobId);
  }

  /** The exact `RunTask` input for one member (exported for the request-shape test and for logs). */
  runTaskInput(spec: JobSpec, member: MemberRef, attempt = 0) {
    const { config } = this;
    return {
      cluster: config.cluster,
      ...placementOf(spec.workerCapacity ?? config.defaultCapacity ?? "fargate", config.taskDefinition, config.gpu, spec.jobId),
      count: 1,
      // At most 128 characters; a job id is at most 40 (docs/protocol.md).
      startedBy: `stf-${spec.jobId}`,
      // One task per job, attempt and member: RunTask repeated with this token within 24 h returns
      // the task it started (a job-watch round that restarted the set and is delivered again).
      // At most 64 characters: 4 + 40 + 2 + 3 + 1 + 9.
      clientToken: `stf-${spec.jobId}-a${attempt}-${memberKey(member)}`,
      group: `stf:${spec.jobId}`,
      propagateTags: "TASK_DEFINITION" as const,
      networkConfiguration: {
        awsvpcConfiguration: { subnets: [...config.subnets], securityGroups: [...config.securityGroups], assignPublicIp: "DISABLED" as const },
      },
      overrides: {
        taskRoleArn: this.roles.arnOf(spec.jobId),
        containerOverrides: [
          {
            name: config.container,
            command: workerArgs(spec.jobId, member, attempt),
            environment: Object.entries({ ...config.env, ...spec.python.env }).map(([name, value]) => ({ name, value })),
          },
        ],
      },
      tags: [
        { key: "serverless-tf:job", value: spec.jobId },
        { key: "serverless-tf:member", value: memberKey(member) },
      ],
    };
  }

  async launch(spec: JobSpec, members: readonly MemberRef[], hooks: { onProgress?: (p: WorkerProgress) => void; onExit?: (e: WorkerExit) => void } = {}): Promise<LaunchedWorkers> {
    await this.roles.ensure(spec);
    const workers = this.workersOf(spec, members, [], hooks, this.config.pollIntervalMs ?? 10_000);
    try {
      // Sequential: RunTask is rate limited per account (Fargate: 20 tasks/s burst), and a
      // failure names the member it stopped at.
      for (const member of members) await workers.start(member);
    } catch (e) {
      await workers.launched.stop().catch(() => undefined); // the members already started, and the role
      throw e;
    }
    workers.watch();
    return workers.launched;
  }

  /** The tasks of `handles` (task ARNs), found again by a watcher: exits come from `refresh()` (one DescribeTasks), never from a timer. */
  attach(spec: JobSpec, members: readonly MemberRef[], handles: readonly WorkerHandle[]): LaunchedWorkers {
    return this.workersOf(spec, members, handles, {}, 0).launched;
  }

  private workersOf(spec: JobSpec, members: readonly MemberRef[], handles: readonly WorkerHandle[], hooks: { onExit?: (e: WorkerExit) => void }, interval: number) {
    const running = new Map<string, { member: MemberRef; taskArn: string }>(handles.map((h) => [h.id, { member: h.member, taskArn: h.id }]));
    const exits: WorkerExit[] = [];
    const start = async (member: MemberRef, attempt = 0) => {
      const out = await this.runTask(spec, member, attempt);
      const taskArn = out.tasks?.[0]?.taskArn;
      if (!taskArn) throw new EcsLaunchError(member, (out.failures ?? []).map((f) => `${f.reason ?? "?"}${f.detail ? ` (${f.detail})` : ""}`));
      running.set(taskArn, { member, taskArn });
    };
    const exitOf = (task: Task, member: MemberRef): WorkerExit => {
      const container = task.containers?.find((c) => c.name === this.config.container);
      const reason = [task.stoppedReason, container?.reason].filter(Boolean).join("; ");
      return { member, code: container?.exitCode ?? null, signal: null, tail: reason };
    };
    const poll = async () => {
      if (!running.size) return;
      // DescribeTasks takes at most 100 tasks; a job has at most 64 members (validateRequest).
      const { tasks = [], failures = [] } = await this.ecs.send(new DescribeTasksCommand({ cluster: this.config.cluster, tasks: [...running.keys()] }));
      const stopped = [
        ...tasks.filter((t) => t.lastStatus === "STOPPED").map((t) => ({ arn: t.taskArn, task: t as Task | undefined })),
        // A task stopped long ago is no longer described (ECS keeps stopped tasks about an hour).
        ...failures.filter((f) => f.reason === "MISSING").map((f) => ({ arn: f.arn, task: undefined })),
      ];
      for (const { arn, task } of stopped) {
        const entry = arn ? running.get(arn) : undefined;
        if (!entry) continue;
        running.delete(entry.taskArn);
        const exit = task ? exitOf(task, entry.member) : { member: entry.member, code: null, signal: null, tail: "the task is no longer known to ECS (stopped over an hour ago)" };
        exits.push(exit);
        hooks.onExit?.(exit);
      }
    };
    const stopAll = (why: string) =>
      Promise.all(
        [...running.values()].map(({ member, taskArn }) =>
          this.ecs.send(new StopTaskCommand({ cluster: this.config.cluster, task: taskArn, reason: `serverless-tf: job ${spec.jobId} ${why}: ${memberKey(member)}` })),
        ),
      );

    let timer: NodeJS.Timeout | undefined;
    let polling: Promise<void> = Promise.resolve();
    // Not unref'd: like the process launcher's children, running tasks keep a waiting caller alive
    // until each exit is reported. The timer ends when no task is left.
    const watch = () => {
      if (interval <= 0 || timer) return;
      timer = setInterval(() => {
        polling = polling
          .then(poll)
          .catch(() => undefined) // a failed describe is retried next tick
          .then(() => {
            if (!running.size) {
              clearInterval(timer);
              timer = undefined;
            }
          });
      }, interval);
    };
    const launched: LaunchedWorkers = {
      exits,
      restart: async (attempt) => {
        // The whole member set again: stop what runs, report each exit, then start attempt N.
        await stopAll(`restart as attempt ${attempt}`);
        const pollEvery = Math.max(interval, 1_000);
        while (running.size) {
          await new Promise((resolve) => setTimeout(resolve, pollEvery));
          await poll();
        }
        for (const member of members) await start(member, attempt);
        watch();
      },
      stop: async () => {
        clearInterval(timer);
        timer = undefined;
        await polling;
        await stopAll("stopped");
        running.clear();
        await this.roles.remove(spec.jobId);
      },
      handles: () => [...running.values()].map(({ member, taskArn }) => ({ member, id: taskArn })),
      refresh: async () => {
        const round = polling.then(poll);
        polling = round.catch(() => undefined);
        await round; // the watcher sees a failed describe, and retries the round
      },
    };
    return { start, watch, launched };
  }

  /** RunTask, retried while ECS cannot yet assume the job's new role. */
  private async runTask(spec: JobSpec, member: MemberRef, attempt: number): Promise<RunTaskCommandOutput> {
    const deadline = Date.now() + (this.config.roleSettleMs ?? 60_000);
    for (let wait = 1_000; ; wait = Math.min(wait * 2, 8_000)) {
      try {
        return await this.ecs.send(new RunTaskCommand(this.runTaskInput(spec, member, attempt)));
      } catch (e) {
        if (!ROLE_NOT_READY.test((e as Error).message) || Date.now() + wait > deadline) throw e;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }
}
