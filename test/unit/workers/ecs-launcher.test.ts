/**
 * Request-shape tests of the ECS launcher (aws-sdk-client-mock stands in for ECS, for the
 * shape of the requests only), and its configuration from the environment.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { DescribeTasksCommand, ECSClient, InvalidParameterException, RunTaskCommand, StopTaskCommand } from "@aws-sdk/client-ecs";
import { CreateRoleCommand, DeleteRoleCommand, DeleteRolePolicyCommand, EntityAlreadyExistsException, IAMClient, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import { mockClient } from "aws-sdk-client-mock";
import { ConfigError } from "../../../src/errors.ts";
import type { JobSpec } from "../../../src/protocol/spec.ts";
import { EcsLaunchError, EcsLauncher, NoGpuWorkersError, ecsLauncherConfigFromEnv, type EcsLauncherConfig } from "../../../src/workers/ecs-launcher.ts";
import { launcherFromEnv } from "../../../src/workers/from-env.ts";
import type { WorkerExit } from "../../../src/workers/launcher.ts";

const ecs = mockClient(ECSClient);
const iam = mockClient(IAMClient);
afterEach(() => {
  ecs.reset();
  iam.reset();
});

const config: EcsLauncherConfig = {
  cluster: "stf-cluster",
  taskDefinition: "arn:aws:ecs:eu-west-1:123456789012:task-definition/stf-worker:3",
  container: "worker",
  subnets: ["subnet-a", "subnet-b"],
  securityGroups: ["sg-1"],
  env: { SERVERLESS_TF_TABLE: "serverless-tf-registry", SERVERLESS_TF_BUCKET: "stf-artifacts" },
  jobRoles: { partition: "aws", region: "eu-west-1", accountId: "123456789012", tableName: "serverless-tf-registry", boundaryArn: "arn:aws:iam::123456789012:policy/stf-WorkerBoundary" },
  pollIntervalMs: 0,
};
const jobRoleArn = "arn:aws:iam::123456789012:role/serverless-tf/jobs/eu-west-1/serverless-tf-registry/stf-fit-3f9a2c1b04-worker";

const spec = {
  version: 1,
  jobId: "fit-3f9a2c1b04",
  mode: "train",
  cluster: { worker: 2, ps: 0 },
  python: { scripts: ["s3://stf-artifacts/jobs/fit-3f9a2c1b04/code/model.py"], entry: "train", hyperParams: {}, env: { TF_DETERMINISTIC_OPS: "1" } },
  bucket: "stf-artifacts",
  bounded: true,
  queues: { feed: { "worker-0": "http://sqs/q/stf-fit-3f9a2c1b04-feed-worker-0" }, output: "http://sqs/q/stf-fit-3f9a2c1b04-output", dlq: "http://sqs/q/stf-fit-3f9a2c1b04-dlq" },
  model: null,
  modelArtifactUri: null,
  initModelUri: null,
} as unknown as JobSpec;

const taskArn = (n: number) => `arn:aws:ecs:eu-west-1:123456789012:task/stf-cluster/task${n}`;

describe("EcsLauncher", () => {
  it("starts each member with one RunTask whose override carries the worker's arguments and environment", async () => {
    // Arrange
    ecs.on(RunTaskCommand).resolvesOnce({ tasks: [{ taskArn: taskArn(0) }] }).resolvesOnce({ tasks: [{ taskArn: taskArn(1) }] });
    // Act
    await new EcsLauncher(config, new ECSClient({ region: "eu-west-1" })).launch(spec, [
      { role: "worker", index: 0 },
      { role: "worker", index: 1 },
    ]);
    // Assert
    const calls = ecs.commandCalls(RunTaskCommand).map((c) => c.args[0].input);
    assert.equal(calls.length, 2);
    assert.deepEqual(calls[1], {
      cluster: "stf-cluster",
      taskDefinition: "arn:aws:ecs:eu-west-1:123456789012:task-definition/stf-worker:3",
      launchType: "FARGATE",
      count: 1,
      startedBy: "stf-fit-3f9a2c1b04",
      clientToken: "stf-fit-3f9a2c1b04-a0-worker-1",
      group: "stf:fit-3f9a2c1b04",
      propagateTags: "TASK_DEFINITION",
      networkConfiguration: { awsvpcConfiguration: { subnets: ["subnet-a", "subnet-b"], securityGroups: ["sg-1"], assignPublicIp: "DISABLED" } },
      overrides: {
        taskRoleArn: jobRoleArn,
        containerOverrides: [
          {
            name: "worker",
            command: ["--job-id", "fit-3f9a2c1b04", "--role", "worker", "--index", "1", "--attempt", "0"],
            environment: [
              { name: "SERVERLESS_TF_TABLE", value: "serverless-tf-registry" },
              { name: "SERVERLESS_TF_BUCKET", value: "stf-artifacts" },
              { name: "TF_DETERMINISTIC_OPS", value: "1" },
            ],
          },
        ],
      },
      tags: [
        { key: "serverless-tf:job", value: "fit-3f9a2c1b04" },
        { key: "serverless-tf:member", value: "worker-1" },
      ],
    });
  });

  it("places a job's tasks on FARGATE_SPOT when its spec or the stack's default says fargate-spot, in place of the Fargate launch type", async () => {
    ecs.on(RunTaskCommand).resolves({ tasks: [{ taskArn: taskArn(0) }] });
    const launcher = () => new EcsLauncher({ ...config, defaultCapacity: "fargate-spot" }, new ECSClient({ region: "eu-west-1" }), new IAMClient({ region: "eu-west-1" }));
    await launcher().launch(spec, [{ role: "worker", index: 0 }]);
    await launcher().launch({ ...spec, workerCapacity: "fargate" }, [{ role: "worker", index: 0 }]);
    const [spot, onDemand] = ecs.commandCalls(RunTaskCommand).map((c) => c.args[0].input);
    assert.deepEqual([spot!.capacityProviderStrategy, spot!.launchType], [[{ capacityProvider: "FARGATE_SPOT", weight: 1 }], undefined]);
    assert.deepEqual([onDemand!.capacityProviderStrategy, onDemand!.launchType], [undefined, "FARGATE"], "the job's own capacity wins over the stack's");
  });

  it("runs a gpu job's tasks from the GPU task definition on the GPU instances' capacity provider", async () => {
    ecs.on(RunTaskCommand).resolves({ tasks: [{ taskArn: taskArn(0) }] });
    const gpu = { taskDefinition: "arn:aws:ecs:eu-west-1:123456789012:task-definition/stf-gpu-worker:1", capacityProvider: "stf-GpuCapacity" };
    const launcher = new EcsLauncher({ ...config, gpu }, new ECSClient({ region: "eu-west-1" }), new IAMClient({ region: "eu-west-1" }));
    await launcher.launch({ ...spec, workerCapacity: "gpu" }, [{ role: "worker", index: 0 }]);
    await launcher.launch(spec, [{ role: "worker", index: 0 }]);
    const [onGpu, onFargate] = ecs.commandCalls(RunTaskCommand).map((c) => c.args[0].input);
    assert.deepEqual([onGpu!.taskDefinition, onGpu!.capacityProviderStrategy, onGpu!.launchType], [gpu.taskDefinition, [{ capacityProvider: gpu.capacityProvider, weight: 1 }], undefined]);
    assert.deepEqual([onFargate!.taskDefinition, onFargate!.launchType], [config.taskDefinition, "FARGATE"], "other jobs stay on the Fargate task definition");
  });

  it("refuses a gpu job on a stack without GPU workers before anything is made, saying which prop adds them", () => {
    const launcher = new EcsLauncher(config, new ECSClient({ region: "eu-west-1" }), new IAMClient({ region: "eu-west-1" }));
    assert.throws(() => launcher.checkCapacity(spec.jobId, "gpu"), (e: unknown) => e instanceof NoGpuWorkersError && e instanceof ConfigError && /gpuWorkers/.test(e.message));
    launcher.checkCapacity(spec.jobId, "fargate-spot");
    assert.equal(iam.commandCalls(CreateRoleCommand).length + ecs.commandCalls(RunTaskCommand).length, 0);
  });

  it("creates the job's role, bounded by the stack's policy, before the first task, and deletes it when the job stops", async () => {
    // Arrange
    ecs.on(RunTaskCommand).resolves({ tasks: [{ taskArn: taskArn(0) }] });
    ecs.on(StopTaskCommand).resolves({});
    // Act
    const workers = await new EcsLauncher(config, new ECSClient({ region: "eu-west-1" }), new IAMClient({ region: "eu-west-1" })).launch(spec, [{ role: "worker", index: 0 }]);
    const created = iam.commandCalls(CreateRoleCommand).map((c) => c.args[0].input);
    const policies = iam.commandCalls(PutRolePolicyCommand).map((c) => c.args[0].input);
    await workers.stop();
    // Assert
    assert.equal(created.length, 1);
    assert.equal(created[0]!.RoleName, "stf-fit-3f9a2c1b04-worker");
    assert.equal(created[0]!.Path, "/serverless-tf/jobs/eu-west-1/serverless-tf-registry/", "this deployment's path: its region and registry table");
    assert.equal(created[0]!.PermissionsBoundary, config.jobRoles.boundaryArn);
    assert.deepEqual(JSON.parse(created[0]!.AssumeRolePolicyDocument!).Statement[0].Principal, { Service: "ecs-tasks.amazonaws.com" });
    assert.equal(policies.length, 1);
    assert.match(policies[0]!.PolicyDocument!, /job#fit-3f9a2c1b04/);
    assert.deepEqual(iam.commandCalls(DeleteRolePolicyCommand).map((c) => c.args[0].input), [{ RoleName: "stf-fit-3f9a2c1b04-worker", PolicyName: "job-access" }]);
    assert.deepEqual(iam.commandCalls(DeleteRoleCommand).map((c) => c.args[0].input), [{ RoleName: "stf-fit-3f9a2c1b04-worker" }]);
  });

  it("takes a role that exists (a start delivered again) and puts the job's policy on it again", async () => {
    iam.on(CreateRoleCommand).rejects(new EntityAlreadyExistsException({ message: "Role with name stf-fit-3f9a2c1b04-worker already exists.", $metadata: {} }));
    ecs.on(RunTaskCommand).resolves({ tasks: [{ taskArn: taskArn(0) }] });
    await new EcsLauncher(config, new ECSClient({ region: "eu-west-1" }), new IAMClient({ region: "eu-west-1" })).launch(spec, [{ role: "worker", index: 0 }]);
    assert.equal(iam.commandCalls(PutRolePolicyCommand).length, 1);
    assert.equal(ecs.commandCalls(RunTaskCommand).length, 1);
  });

  it("retries RunTask while ECS cannot yet assume the new role, and gives up at the settle time", async () => {
    // Arrange: IAM is eventually consistent; a role created a moment ago may not be assumable yet
    const notReady = () =>
      new InvalidParameterException({ message: `ECS was unable to assume the role '${jobRoleArn}' that was provided for this task.`, $metadata: {} });
    ecs.on(RunTaskCommand).rejectsOnce(notReady()).resolves({ tasks: [{ taskArn: taskArn(0) }] });
    // Act
    await new EcsLauncher(config, new ECSClient({ region: "eu-west-1" }), new IAMClient({ region: "eu-west-1" })).launch(spec, [{ role: "worker", index: 0 }]);
    // Assert
    assert.equal(ecs.commandCalls(RunTaskCommand).length, 2);
    ecs.reset();
    ecs.on(RunTaskCommand).rejects(notReady());
    await assert.rejects(
      new EcsLauncher({ ...config, roleSettleMs: 0 }, new ECSClient({ region: "eu-west-1" }), new IAMClient({ region: "eu-west-1" })).launch(spec, [{ role: "worker", index: 0 }]),
      /unable to assume the role/,
    );
  });

  it("fails with the member and ECS's reason when RunTask starts no task, stopping what it started and deleting the role", async () => {
    ecs.on(RunTaskCommand).resolvesOnce({ tasks: [{ taskArn: taskArn(0) }] }).resolves({ tasks: [], failures: [{ reason: "RESOURCE:ENI", detail: "no free addresses in subnet-a" }] });
    ecs.on(StopTaskCommand).resolves({});
    await assert.rejects(
      new EcsLauncher(config, new ECSClient({ region: "eu-west-1" }), new IAMClient({ region: "eu-west-1" })).launch(spec, [
        { role: "worker", index: 0 },
        { role: "worker", index: 1 },
      ]),
      (e: unknown) => e instanceof EcsLaunchError && /worker-1/.test(e.message) && /RESOURCE:ENI \(no free addresses in subnet-a\)/.test(e.message),
    );
    assert.deepEqual(ecs.commandCalls(StopTaskCommand).map((c) => c.args[0].input.task), [taskArn(0)]);
    assert.equal(iam.commandCalls(DeleteRoleCommand).length, 1);
  });

  it("reports a stopped task as the member's exit with the container's exit code and the stop reason", async () => {
    // Arrange
    ecs.on(RunTaskCommand).resolves({ tasks: [{ taskArn: taskArn(0) }] });
    ecs.on(DescribeTasksCommand).resolves({
      tasks: [{ taskArn: taskArn(0), lastStatus: "STOPPED", stoppedReason: "Essential container in task exited", containers: [{ name: "worker", exitCode: 3 }] }],
    });
    let onExit: (e: WorkerExit) => void = () => undefined;
    const exited = new Promise<WorkerExit>((resolve) => (onExit = resolve));
    // Act
    const workers = await new EcsLauncher({ ...config, pollIntervalMs: 5 }, new ECSClient({ region: "eu-west-1" })).launch(spec, [{ role: "worker", index: 0 }], { onExit });
    const exit = await exited;
    await workers.stop();
    // Assert
    assert.deepEqual(exit, { member: { role: "worker", index: 0 }, code: 3, signal: null, tail: "Essential container in task exited" });
    assert.deepEqual(workers.exits, [exit]);
    assert.deepEqual(ecs.commandCalls(DescribeTasksCommand)[0]?.args[0].input, { cluster: "stf-cluster", tasks: [taskArn(0)] });
    assert.equal(ecs.commandCalls(StopTaskCommand).length, 0, "a task that stopped by itself is not stopped again");
  });

  it("stops every task still running, naming the job and member in the reason", async () => {
    ecs.on(RunTaskCommand).resolves({ tasks: [{ taskArn: taskArn(0) }] });
    ecs.on(StopTaskCommand).resolves({});
    const workers = await new EcsLauncher(config, new ECSClient({ region: "eu-west-1" })).launch(spec, [{ role: "worker", index: 0 }]);
    await workers.stop();
    assert.deepEqual(ecs.commandCalls(StopTaskCommand)[0]?.args[0].input, { cluster: "stf-cluster", task: taskArn(0), reason: "serverless-tf: job fit-3f9a2c1b04 stopped: worker-0" });
  });
});

describe("EcsLauncher restart", () => {
  it("stops the member set, waits for every exit, then starts each member as the new attempt", async () => {
    // Arrange
    ecs.on(RunTaskCommand).resolvesOnce({ tasks: [{ taskArn: taskArn(0) }] }).resolvesOnce({ tasks: [{ taskArn: taskArn(1) }] });
    ecs.on(StopTaskCommand).resolves({});
    ecs.on(DescribeTasksCommand).resolves({ tasks: [{ taskArn: taskArn(0), lastStatus: "STOPPED", stoppedReason: "restart", containers: [{ name: "worker", exitCode: 137 }] }] });
    const workers = await new EcsLauncher(config, new ECSClient({ region: "eu-west-1" })).launch(spec, [{ role: "worker", index: 0 }]);
    // Act
    await workers.restart!(2);
    await workers.stop();
    // Assert
    assert.equal(ecs.commandCalls(StopTaskCommand)[0]?.args[0].input.task, taskArn(0));
    assert.deepEqual(workers.exits.map((e) => e.code), [137]);
    assert.deepEqual(ecs.commandCalls(RunTaskCommand)[1]?.args[0].input.overrides?.containerOverrides?.[0]?.command, ["--job-id", "fit-3f9a2c1b04", "--role", "worker", "--index", "0", "--attempt", "2"]);
    assert.equal(ecs.commandCalls(RunTaskCommand)[1]?.args[0].input.clientToken, "stf-fit-3f9a2c1b04-a2-worker-0", "a repeated restart of attempt 2 gets the same task back");
  });
});

describe("EcsLauncher attach", () => {
  it("takes over tasks by their ARNs: one DescribeTasks per refresh reports the stopped and the forgotten ones, and the handles drop them", async () => {
    // Arrange: task1 runs, task2 stopped with code 1, task3 is too old for ECS to describe
    ecs.on(DescribeTasksCommand).resolves({
      tasks: [
        { taskArn: taskArn(1), lastStatus: "RUNNING" },
        { taskArn: taskArn(2), lastStatus: "STOPPED", stoppedReason: "Essential container in task exited", containers: [{ name: "worker", exitCode: 1 }] },
      ],
      failures: [{ arn: taskArn(3), reason: "MISSING" }],
    });
    const handles = [0, 1, 2].map((index) => ({ member: { role: "worker" as const, index }, id: taskArn(index + 1) }));
    const workers = new EcsLauncher(config, ecs as unknown as ECSClient).attach(spec, handles.map((h) => h.member), handles);
    // Act
    await workers.refresh!();
    // Assert
    assert.equal(ecs.commandCalls(DescribeTasksCommand).length, 1);
    assert.deepEqual(ecs.commandCalls(DescribeTasksCommand)[0]!.args[0].input, { cluster: "stf-cluster", tasks: handles.map((h) => h.id) });
    assert.deepEqual(workers.exits.map((e) => [e.member.index, e.code]), [[1, 1], [2, null]]);
    assert.match(workers.exits[1]!.tail, /no longer known to ECS/);
    assert.deepEqual(workers.handles!(), [handles[0]]);
  });
});

describe("ecsLauncherConfigFromEnv", () => {
  const env = {
    SERVERLESS_TF_ECS_CLUSTER: "stf-cluster",
    SERVERLESS_TF_ECS_TASK_DEFINITION: "stf-worker:3",
    SERVERLESS_TF_ECS_SUBNETS: "subnet-a, subnet-b",
    SERVERLESS_TF_ECS_SECURITY_GROUPS: "sg-1",
    SERVERLESS_TF_JOB_ROLE_BOUNDARY: "arn:aws:iam::123456789012:policy/stf-WorkerBoundary",
    AWS_REGION: "eu-west-1",
  };
  const names = { tableName: "t-registry", bucket: "b-artifacts" };

  it("reads the names the stack sets on the coordinator", () => {
    assert.deepEqual(ecsLauncherConfigFromEnv(names, env), {
      cluster: "stf-cluster",
      taskDefinition: "stf-worker:3",
      container: "worker",
      subnets: ["subnet-a", "subnet-b"],
      securityGroups: ["sg-1"],
      env: { SERVERLESS_TF_TABLE: "t-registry", SERVERLESS_TF_BUCKET: "b-artifacts" },
      jobRoles: { partition: "aws", region: "eu-west-1", accountId: "123456789012", tableName: "t-registry", boundaryArn: "arn:aws:iam::123456789012:policy/stf-WorkerBoundary" },
    });
  });

  it("takes the stack's default worker capacity, and names the variable when it is neither fargate nor fargate-spot", () => {
    assert.equal(ecsLauncherConfigFromEnv(names, { ...env, SERVERLESS_TF_WORKER_CAPACITY: "fargate-spot" }).defaultCapacity, "fargate-spot");
    assert.throws(() => ecsLauncherConfigFromEnv(names, { ...env, SERVERLESS_TF_WORKER_CAPACITY: "spot" }), (e: unknown) => e instanceof ConfigError && e.setting === "SERVERLESS_TF_WORKER_CAPACITY");
  });

  it("reads the GPU task definition and capacity provider when the stack has GPU workers, and wants both", () => {
    const gpuEnv = { ...env, SERVERLESS_TF_ECS_GPU_TASK_DEFINITION: "stf-gpu-worker:1", SERVERLESS_TF_ECS_GPU_CAPACITY_PROVIDER: "stf-GpuCapacity" };
    assert.deepEqual(ecsLauncherConfigFromEnv(names, gpuEnv).gpu, { taskDefinition: "stf-gpu-worker:1", capacityProvider: "stf-GpuCapacity" });
    assert.equal(ecsLauncherConfigFromEnv(names, env).gpu, undefined);
    assert.throws(
      () => ecsLauncherConfigFromEnv(names, { ...gpuEnv, SERVERLESS_TF_ECS_GPU_CAPACITY_PROVIDER: "" }),
      (e: unknown) => e instanceof ConfigError && e.setting === "SERVERLESS_TF_ECS_GPU_CAPACITY_PROVIDER",
    );
  });

  it("names the missing variable and what it must hold", () => {
    assert.throws(
      () => ecsLauncherConfigFromEnv(names, { ...env, SERVERLESS_TF_ECS_SUBNETS: "" }),
      (e: unknown) => e instanceof ConfigError && e.setting === "SERVERLESS_TF_ECS_SUBNETS" && /subnet ids/.test(e.message),
    );
  });
});

describe("launcherFromEnv", () => {
  it("gives a deployed coordinator the ECS launcher when SERVERLESS_TF_LAUNCHER=ecs", () => {
    const launcher = launcherFromEnv(
      { tableName: "t-registry", bucket: "b-artifacts" },
      {
        SERVERLESS_TF_LAUNCHER: "ecs",
        SERVERLESS_TF_ECS_CLUSTER: "c",
        SERVERLESS_TF_ECS_TASK_DEFINITION: "td:1",
        SERVERLESS_TF_ECS_SUBNETS: "subnet-a",
        SERVERLESS_TF_ECS_SECURITY_GROUPS: "sg-1",
        SERVERLESS_TF_JOB_ROLE_BOUNDARY: "arn:aws:iam::123456789012:policy/stf-WorkerBoundary",
        AWS_REGION: "eu-west-1",
      },
    );
    assert.ok(launcher instanceof EcsLauncher);
  });

  it("names the first missing ECS setting", () => {
    assert.throws(
      () => launcherFromEnv({ tableName: "t-registry", bucket: "b-artifacts" }, { SERVERLESS_TF_LAUNCHER: "ecs" }),
      (e: unknown) => e instanceof ConfigError && e.setting === "SERVERLESS_TF_ECS_CLUSTER",
    );
  });
});
