/**
 * Deploys a synthesized template onto an AWS emulator, as CloudFormation would create it, for the
 * resource types the stack's data path runs on: queues (with their redrive policies), the
 * registry table, buckets, managed policies (the worker boundary job roles are made with) and the
 * bucket notifications CDK's custom resource would set. Compute (functions, worker tasks) is given
 * physical ids here and run by the hosted stack itself; what nothing here can emulate (the
 * stack's own roles, VPC networking, log groups) is listed in `notEmulated`.
 */
import { createHash, randomBytes } from "node:crypto";
import { CreatePolicyCommand, type IAMClient } from "@aws-sdk/client-iam";
import { BucketAlreadyOwnedByYou, CreateBucketCommand, PutBucketNotificationConfigurationCommand, type NotificationConfiguration } from "@aws-sdk/client-s3";
import type { AwsClients } from "../aws/clients.ts";
import { createQueue, queueArn } from "../jobs/queues.ts";
import { ensureRegistryTable } from "../registry/table.ts";
import { resolveValue, resourcesOfType, TemplateError, type CfnTemplate, type Physical, type Pseudo } from "./template.ts";

export interface DeployedTemplate {
  readonly physical: ReadonlyMap<string, Physical>;
  readonly pseudo: Pseudo;
  /** The stack's outputs, resolved. */
  readonly outputs: Readonly<Record<string, string>>;
  /** Resource types present in the template that the hosted stack does not emulate, with their count. */
  readonly notEmulated: Readonly<Record<string, number>>;
}

/** Types whose effect the hosted stack reproduces (created here, or run by src/hosted/hosted-stack.ts). */
const EMULATED = new Set([
  "AWS::SQS::Queue",
  "AWS::DynamoDB::Table",
  "AWS::S3::Bucket",
  "AWS::IAM::ManagedPolicy",
  "Custom::S3BucketNotifications",
  "AWS::Lambda::Function",
  "AWS::Lambda::LayerVersion",
  "AWS::Lambda::EventSourceMapping",
  "AWS::ECS::Cluster",
  "AWS::ECS::TaskDefinition",
]);

const shortHash = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 17);

/** CloudFormation's generated names: `<stack>-<logical id>`, cut to a service's length limit. */
function generatedName(pseudo: Pseudo, logicalId: string, max: number, lower = false): string {
  const name = `${pseudo.stackName}-${logicalId}`.slice(0, max);
  return lower ? name.toLowerCase() : name;
}

export async function deployTemplate(clients: AwsClients, iam: IAMClient, template: CfnTemplate, pseudo: Pseudo): Promise<DeployedTemplate> {
  const physical = new Map<string, Physical>();
  const arn = (service: string, resource: string) => `arn:aws:${service}:${pseudo.region}:${pseudo.accountId}:${resource}`;
  const resolve = (value: unknown, path: string) => resolveValue(value, physical, pseudo, path);

  // Queues: dead-letter targets first, since a redrive policy names its target's ARN.
  const queues = resourcesOfType(template, "AWS::SQS::Queue").sort(([, a], [, b]) => Number(Boolean(a.Properties?.RedrivePolicy)) - Number(Boolean(b.Properties?.RedrivePolicy)));
  for (const [id, r] of queues) {
    const p = r.Properties ?? {};
    const name = String(p.QueueName ?? generatedName(pseudo, id, 80));
    const attributes: Record<string, string> = {};
    for (const key of ["VisibilityTimeout", "MessageRetentionPeriod", "MaximumMessageSize", "DelaySeconds", "ReceiveMessageWaitTimeSeconds", "FifoQueue", "ContentBasedDeduplication"]) {
      if (p[key] !== undefined) attributes[key] = String(p[key]);
    }
    if (p.RedrivePolicy) attributes.RedrivePolicy = JSON.stringify(resolve(p.RedrivePolicy, `${id}.RedrivePolicy`));
    const url = await createQueue(clients, name, attributes);
    physical.set(id, { ref: url, attrs: { Arn: await queueArn(clients, url), QueueName: name, QueueUrl: url } });
  }
  for (const [id, r] of resourcesOfType(template, "AWS::DynamoDB::Table")) {
    const name = String(r.Properties?.TableName ?? generatedName(pseudo, id, 255));
    await ensureRegistryTable(clients, name);
    physical.set(id, { ref: name, attrs: { Arn: arn("dynamodb", `table/${name}`) } });
  }
  for (const [id, r] of resourcesOfType(template, "AWS::S3::Bucket")) {
    const name = String(r.Properties?.BucketName ?? `${generatedName(pseudo, id, 45, true)}-${shortHash(id).slice(0, 12)}`);
    await clients.s3.send(new CreateBucketCommand({ Bucket: name })).catch((e: unknown) => {
      if (!(e instanceof BucketAlreadyOwnedByYou)) throw e;
    });
    physical.set(id, { ref: name, attrs: { Arn: `arn:aws:s3:::${name}`, DomainName: `${name}.s3.amazonaws.com` } });
  }
  // Managed policies as CloudFormation names them (`<stack>-<logical id>-<random>`), so a second
  // deployment of the same stack on one emulator makes its own. Ref is the policy's ARN.
  for (const [id, r] of resourcesOfType(template, "AWS::IAM::ManagedPolicy")) {
    const name = String(r.Properties?.ManagedPolicyName ?? `${generatedName(pseudo, id, 115)}-${randomBytes(6).toString("hex").toUpperCase()}`);
    const document = resolve(r.Properties?.PolicyDocument, `${id}.PolicyDocument`);
    const { Policy } = await iam.send(new CreatePolicyCommand({ PolicyName: name, PolicyDocument: JSON.stringify(document), Path: String(r.Properties?.Path ?? "/") }));
    physical.set(id, { ref: Policy!.Arn!, attrs: { PolicyArn: Policy!.Arn! } });
  }
  // Compute and networking get the ids their services would return; the hosted stack runs them.
  for (const [id, r] of Object.entries(template.Resources)) {
    const p = r.Properties ?? {};
    switch (r.Type) {
      case "AWS::Lambda::Function": {
        const name = String(p.FunctionName ?? generatedName(pseudo, id, 64));
        physical.set(id, { ref: name, attrs: { Arn: arn("lambda", `function:${name}`) } });
        break;
      }
      case "AWS::Lambda::LayerVersion": {
        // Ref is the version's ARN; its files are staged in the cloud assembly (src/hosted/hosted-stack.ts).
        const ref = arn("lambda", `layer:${String(p.LayerName ?? generatedName(pseudo, id, 64))}:1`);
        physical.set(id, { ref, attrs: { LayerVersionArn: ref } });
        break;
      }
      case "AWS::ECS::Cluster": {
        const name = String(p.ClusterName ?? generatedName(pseudo, id, 255));
        physical.set(id, { ref: name, attrs: { Arn: arn("ecs", `cluster/${name}`) } });
        break;
      }
      case "AWS::ECS::TaskDefinition": {
        const ref = arn("ecs", `task-definition/${String(p.Family ?? generatedName(pseudo, id, 255))}:1`);
        physical.set(id, { ref, attrs: { TaskDefinitionArn: ref } });
        break;
      }
      case "AWS::EC2::Subnet":
        physical.set(id, { ref: `subnet-${shortHash(id)}`, attrs: { SubnetId: `subnet-${shortHash(id)}` } });
        break;
      case "AWS::EC2::SecurityGroup":
        physical.set(id, { ref: `sg-${shortHash(id)}`, attrs: { GroupId: `sg-${shortHash(id)}` } });
        break;
      case "AWS::EC2::VPC":
        physical.set(id, { ref: `vpc-${shortHash(id)}`, attrs: { VpcId: `vpc-${shortHash(id)}`, CidrBlock: "10.0.0.0/16" } });
        break;
      case "AWS::IAM::Role":
        physical.set(id, { ref: generatedName(pseudo, id, 64), attrs: { Arn: `arn:aws:iam::${pseudo.accountId}:role/${generatedName(pseudo, id, 64)}`, RoleId: shortHash(id) } });
        break;
      case "AWS::Logs::LogGroup":
        physical.set(id, { ref: generatedName(pseudo, id, 512), attrs: { Arn: arn("logs", `log-group:${generatedName(pseudo, id, 512)}:*`) } });
        break;
      default:
        if (!physical.has(id)) physical.set(id, { ref: id });
    }
  }
  // What CDK's Custom::S3BucketNotifications handler would put: the template's configuration, resolved.
  for (const [id, r] of resourcesOfType(template, "Custom::S3BucketNotifications")) {
    const bucket = String(resolve(r.Properties?.BucketName, `${id}.BucketName`));
    const configuration = resolve(r.Properties?.NotificationConfiguration, `${id}.NotificationConfiguration`) as NotificationConfiguration;
    await clients.s3.send(new PutBucketNotificationConfigurationCommand({ Bucket: bucket, NotificationConfiguration: configuration }));
  }

  const outputs = Object.fromEntries(Object.entries(template.Outputs ?? {}).map(([key, o]) => [key, String(resolve(o.Value, `Outputs.${key}`))]));
  const notEmulated: Record<string, number> = {};
  for (const r of Object.values(template.Resources)) if (!EMULATED.has(r.Type)) notEmulated[r.Type] = (notEmulated[r.Type] ?? 0) + 1;
  return { physical, pseudo, outputs, notEmulated };
}

export { TemplateError };
