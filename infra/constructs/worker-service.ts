/**
 * Where the Python workers run: an ECS cluster and a Fargate task definition whose image is
 * built from `python/Dockerfile`, in a VPC of private isolated subnets that reach S3,
 * DynamoDB, SQS, ECR and CloudWatch Logs through VPC endpoints (no NAT, no internet route).
 *
 * The coordinator starts one task per member with `RunTask` (`src/workers/ecs-launcher.ts`).
 * Synth only stages the image's build context into cdk.out; `cdk deploy` builds and pushes it.
 */
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import { Platform } from "aws-cdk-lib/aws-ecr-assets";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { acknowledge } from "../nag.ts";
import { WORKER_CONTAINER, WORKER_STOP_TIMEOUT_SECONDS } from "../../src/resources/definitions.ts";

export interface WorkerServiceProps {
  /** The directory holding `Dockerfile` (the repository's `python/`). */
  readonly imageDirectory: string;
  /** Fargate task size; TensorFlow wants memory. Default 2 vCPU, 8 GiB. */
  readonly cpu?: number;
  readonly memoryMiB?: number;
  readonly maxAzs?: number;
  readonly logRetention?: logs.RetentionDays;
}

export class WorkerService extends Construct {
  readonly vpc: ec2.Vpc;
  readonly cluster: ecs.Cluster;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly container: ecs.ContainerDefinition;
  readonly securityGroup: ec2.SecurityGroup;
  readonly subnets: ec2.SelectedSubnets;
  readonly logGroup: logs.LogGroup;

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
    for (const [name, service] of [
      ["Sqs", ec2.InterfaceVpcEndpointAwsService.SQS],
      ["EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR],
      ["EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER],
      ["Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS],
    ] as const) {
      // Closed endpoints, opened to the workers' group only (not to the whole VPC CIDR).
      const endpoint = this.vpc.addInterfaceEndpoint(name, { service, subnets: this.subnets, privateDnsEnabled: true, open: false });
      endpoint.connections.allowDefaultPortFrom(this.securityGroup, "HTTPS from the workers");
    }


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
    this.container = this.taskDefinition.addContainer(WORKER_CONTAINER, {
      image: ecs.ContainerImage.fromAsset(props.imageDirectory, { platform: Platform.LINUX_AMD64 }),
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: "worker", logGroup: this.logGroup }),
      essential: true,
      stopTimeout: Duration.seconds(WORKER_STOP_TIMEOUT_SECONDS),
    });
    acknowledge(
      this.taskDefinition.obtainExecutionRole(),
      "AwsSolutions-IAM5[Resource::*]",
      "ecr:GetAuthorizationToken, which CDK grants the execution role to pull the image, supports no resource-level permission (ECR docs: it must be *); the pull actions themselves are scoped to the image's repository.",
    );
  }
}
