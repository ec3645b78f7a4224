/**
 * Where the Python workers run: an ECS cluster and a Fargate task definition whose image is
 * built from `python/Dockerfile`, in a VPC of private isolated subnets that reach S3,
 * DynamoDB, SQS, ECR and CloudWatch Logs through VPC endpoints (no NAT, no internet route).
 *
 * With `gpu`, also a capacity provider of GPU instances (scaling from zero) and an EC2 task
 * definition running the image's `gpu` target, for jobs whose workerCapacity is `gpu`.
 *
 * The coordinator starts one task per member with `RunTask` (`src/workers/ecs-launcher.ts`).
 * Synth only stages the image's build context into cdk.out; `cdk deploy` builds and pushes it.
 */
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as autoscaling from "aws-cdk-lib/aws-autoscaling";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import { Platform } from "aws-cdk-lib/aws-ecr-assets";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { acknowledge } from "../nag.ts";
import type { GpuWorkers } from "../props.ts";
import { WORKER_CONTAINER, WORKER_STOP_TIMEOUT_SECONDS } from "../../src/resources/definitions.ts";

export interface WorkerServiceProps {
  /** The directory holding `Dockerfile` (the repository's `python/`). */
  readonly imageDirectory: string;
  /** Fargate task size; TensorFlow wants memory. Default 2 vCPU, 8 GiB. */
  readonly cpu?: number;
  readonly memoryMiB?: number;
  readonly maxAzs?: number;
  readonly logRetention?: logs.RetentionDays;
  /** GPU workers, resolved (infra/props.ts); absent: none. */
  readonly gpu?: Required<GpuWorkers>;
}

/** What the GPU workers add: their task definition and the capacity provider RunTask names. */
export interface GpuWorkerCapacity {
  readonly taskDefinition: ecs.Ec2TaskDefinition;
  readonly capacityProvider: ecs.AsgCapacityProvider;
}

export class WorkerService extends Construct {
  readonly vpc: ec2.Vpc;
  readonly cluster: ecs.Cluster;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly container: ecs.ContainerDefinition;
  readonly securityGroup: ec2.SecurityGroup;
  readonly subnets: ec2.SelectedSubnets;
  readonly logGroup: logs.LogGroup;
  readonly gpu?: GpuWorkerCapacity;

  constructor(scope: Construct, id: string, props: WorkerServiceProps) {
    super(scope, id);
    const flowLogs = new logs.LogGroup(this, "FlowLogs", { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
    this.vpc = new ec2.Vpc(this, "Vpc", {
      maxAzs: props.maxAzs ?? 2,
      natGateways: 0,
      subnetConfiguration: [{ name: "workers", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 20 }],
      flowLogs: { rejected: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: ec2.FlowLogTrafficType.REJECT } },
      // Nothing is placed in the default security group; restricting it would add a custom
      // resource Lambda to the stack for no traffic that exists.
      restrictDefaultSecurityGroup: false,
    });
    this.subnets = this.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_ISOLATED });
    // Gateway endpoints are free; S3 also serves the image layers ECR stores.
    this.vpc.addGatewayEndpoint("S3", { service: ec2.GatewayVpcEndpointAwsService.S3, subnets: [this.subnets] });
    this.vpc.addGatewayEndpoint("DynamoDb", { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets: [this.subnets] });
    this.securityGroup = new ec2.SecurityGroup(this, "Workers", { vpc: this.vpc, description: "serverless-tf workers: TensorFlow gRPC between members", allowAllOutbound: true });
    // Each member's gRPC server binds a free ephemeral port (python/serverless_tf/worker/entry.py free_port) and publishes
    // it in the registry, so peers of the same group need the ephemeral range from each other.
    this.securityGroup.addIngressRule(this.securityGroup, ec2.Port.tcpRange(1024, 65535), "TensorFlow gRPC between members of a job");
    this.addEndpoints(
      [
        ["Sqs", ec2.InterfaceVpcEndpointAwsService.SQS],
        ["EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR],
        ["EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER],
        ["Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS],
      ],
      "HTTPS from the workers",
    );


    // FARGATE and FARGATE_SPOT: a job's tasks run on either (src/workers/ecs-launcher.ts placementOf).
    this.cluster = new ecs.Cluster(this, "Cluster", { vpc: this.vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED, enableFargateCapacityProviders: true });
    this.logGroup = new logs.LogGroup(this, "Logs", { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
    this.taskDefinition = new ecs.FargateTaskDefinition(this, "Task", {
      cpu: props.cpu ?? 2048,
      memoryLimitMiB: props.memoryMiB ?? 8192,
      // tensorflow-cpu wheels are built for x86-64; the image is built for it explicitly.
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.X86_64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    });
    // No environment here: the launcher passes table and bucket as RunTask overrides, so the
    // task definition holds no configuration (and no secret could ever land in it).
    this.container = this.taskDefinition.addContainer(WORKER_CONTAINER, this.workerContainer(props.imageDirectory, undefined, "worker"));
    acknowledge(this.taskDefinition.obtainExecutionRole(), "AwsSolutions-IAM5[Resource::*]", ECR_TOKEN_REASON);
    if (props.gpu) this.gpu = this.addGpuWorkers(props.imageDirectory, props.gpu);
  }

  private addGpuWorkers(imageDirectory: string, gpu: Required<GpuWorkers>): GpuWorkerCapacity {
    // Container instances register with ECS and report through these; the subnets have no other way out.
    this.addEndpoints(
      [
        ["Ecs", ec2.InterfaceVpcEndpointAwsService.ECS],
        ["EcsAgent", ec2.InterfaceVpcEndpointAwsService.ECS_AGENT],
        ["EcsTelemetry", ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY],
      ],
      "HTTPS from the GPU instances",
    );
    const instanceRole = new iam.Role(this, "GpuInstanceRole", { assumedBy: new iam.ServicePrincipal("ec2.amazonaws.com"), description: "serverless-tf: GPU container instances of the worker cluster" });
    const launchTemplate = new ec2.LaunchTemplate(this, "GpuInstances", {
      instanceType: new ec2.InstanceType(gpu.instanceType),
      // The ECS GPU-optimized AMI: the NVIDIA driver and container toolkit, so a task's GPUs appear in its container.
      machineImage: ecs.EcsOptimizedImage.amazonLinux2023(ecs.AmiHardwareType.GPU),
      role: instanceRole,
      securityGroup: this.securityGroup,
      requireImdsv2: true,
      // The ECS agent's cluster join is added here by the capacity provider.
      userData: ec2.UserData.forLinux(),
      // The CUDA wheels make the GPU image several GB; the root volume holds it.
      blockDevices: [{ deviceName: "/dev/xvda", volume: ec2.BlockDeviceVolume.ebs(100, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }) }],
    });
    const group = new autoscaling.AutoScalingGroup(this, "GpuGroup", {
      vpc: this.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      launchTemplate,
      minCapacity: 0,
      maxCapacity: gpu.maxInstances,
    });
    acknowledge(group, "AwsSolutions-AS3", "The capacity provider starts and stops these instances for RunTask; ECS events and the job's registry items record every worker, so ASG notifications would tell no one anything new.");
    // Managed scaling: RunTask on the provider leaves the task PROVISIONING until an instance is up, from zero.
    // Managed draining: ECS moves tasks off an instance before scale-in, so no drain-hook function is needed.
    const capacityProvider = new ecs.AsgCapacityProvider(this, "GpuCapacity", {
      autoScalingGroup: group,
      enableManagedTerminationProtection: false,
      enableManagedDraining: true,
      machineImageType: ecs.MachineImageType.AMAZON_LINUX_2,
    });
    this.cluster.addAsgCapacityProvider(capacityProvider);
    for (const finding of ["AwsSolutions-IAM5[Action::ecs:Submit*]", "AwsSolutions-IAM5[Resource::*]"]) {
      acknowledge(
        instanceRole,
        finding,
        "The ECS agent's own permissions, as CDK grants them to a cluster's container instances (ecs:Poll, ecs:Submit*, ecs:StartTelemetrySession, ecr:GetAuthorizationToken, logs): ECS documents them on every resource, and the tasks run as their job's role, not this one.",
      );
    }

    // awsvpc, as on Fargate: each task has its own address, which it publishes in the registry.
    const taskDefinition = new ecs.Ec2TaskDefinition(this, "GpuTask", { networkMode: ecs.NetworkMode.AWS_VPC });
    taskDefinition.addContainer(WORKER_CONTAINER, {
      ...this.workerContainer(imageDirectory, "gpu", "gpu-worker"),
      cpu: gpu.cpu,
      memoryLimitMiB: gpu.memoryMiB,
      gpuCount: gpu.gpusPerWorker,
    });
    acknowledge(taskDefinition.obtainExecutionRole(), "AwsSolutions-IAM5[Resource::*]", ECR_TOKEN_REASON);
    acknowledge(taskDefinition, "AwsSolutions-ECS2", "Its one variable is AWS_REGION, which CDK sets for containers on EC2 (Fargate sets it itself); table and bucket come as RunTask overrides, secrets by ARN inside the task.");
    return { taskDefinition, capacityProvider };
  }

  /** Closed interface endpoints in the worker subnets, opened to the workers' group only (not to the whole VPC CIDR). */
  private addEndpoints(endpoints: readonly (readonly [string, ec2.InterfaceVpcEndpointAwsService])[], description: string): void {
    for (const [name, service] of endpoints) {
      const endpoint = this.vpc.addInterfaceEndpoint(name, { service, subnets: this.subnets, privateDnsEnabled: true, open: false });
      endpoint.connections.allowDefaultPortFrom(this.securityGroup, description);
    }
  }

  /** The worker container as both task definitions run it: the image (a Dockerfile target), its logs, and the time SIGTERM leaves it. */
  private workerContainer(imageDirectory: string, target: string | undefined, streamPrefix: string): ecs.ContainerDefinitionOptions {
    return {
      image: ecs.ContainerImage.fromAsset(imageDirectory, { platform: Platform.LINUX_AMD64, ...(target ? { target } : {}) }),
      logging: ecs.LogDrivers.awsLogs({ streamPrefix, logGroup: this.logGroup }),
      essential: true,
      stopTimeout: Duration.seconds(WORKER_STOP_TIMEOUT_SECONDS),
    };
  }
}

const ECR_TOKEN_REASON =
  "ecr:GetAuthorizationToken, which CDK grants the execution role to pull the image, supports no resource-level permission (ECR docs: it must be *); the pull actions themselves are scoped to the image's repository.";
