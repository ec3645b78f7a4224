/**
 * One IAM role per job for its worker tasks, so that user code in one job cannot reach another
 * job's registry items, queues or objects. The coordinator creates the role before the first
 * `RunTask` and every task of the job runs with it (`overrides.taskRoleArn`); finishing the job
 * deletes it. The task definition's own role holds nothing, and the role's permissions boundary
 * (the stack's worker boundary policy) caps what any job role can be given, so a bug here can
 * narrow access but never widen it past what the stack allows.
 *
 * Why a role per job and not session tags: ECS cannot tag a task role's session, and credentials
 * handed to a task in its overrides would sit in plain text in DescribeTasks and expire after an
 * hour (role chaining), where training runs for days.
 */
import {
  CreateRoleCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  EntityAlreadyExistsException,
  IAMClient,
  NoSuchEntityException,
  PutRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { ConfigError } from "../errors.ts";
import { jobKeys, parseS3Uri } from "../protocol/names.ts";
import type { JobSpec } from "../protocol/spec.ts";

import { jobRoleName, jobRolePath } from "../resources/definitions.ts";

export { jobRoleName, jobRolePath };

/** The one inline policy of a job role. */
export const JOB_ROLE_POLICY = "job-access";

/** Where the stack's resources are: what a job's policy names besides the job's own keys. */
export interface JobRoleResources {
  readonly partition: string;
  readonly region: string;
  readonly accountId: string;
  readonly tableName: string;
  /** ARN of the managed policy every job role gets as its permissions boundary. */
  readonly boundaryArn: string;
}

export interface PolicyStatement {
  readonly Sid: string;
  readonly Effect: "Allow";
  readonly Action: readonly string[];
  readonly Resource: readonly string[];
  readonly Condition?: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;
}

export interface PolicyDocument {
  readonly Version: "2012-10-17";
  readonly Statement: readonly PolicyStatement[];
}

/** The account, partition of the boundary policy's ARN (`arn:<partition>:iam::<account>:policy/...`). */
export function resourcesFromBoundary(boundaryArn: string, region: string, tableName: string): JobRoleResources {
  const m = /^arn:([a-z-]+):iam::(\d{12}):policy\/.+$/.exec(boundaryArn);
  if (!m) throw new ConfigError("jobRoleBoundary", boundaryArn, "the ARN of an IAM managed policy, arn:<partition>:iam::<account>:policy/<name>");
  return { partition: m[1]!, accountId: m[2]!, region, tableName, boundaryArn };
}

const queueName = (url: string) => url.slice(url.lastIndexOf("/") + 1);

/**
 * Where a job writes its model: a bounded job's `exportUri`; an unbounded job's
 * `<versionsUri><14-digit time>-<jobId>/` (`newVersion`, src/protocol/model-metadata.ts). The time
 * is 14 single-character wildcards, not `*`: with `*`, job `a` could write the versions of job `x-a`.
 */
function exportLocation(spec: JobSpec) {
  if (!spec.model) return null;
  if (spec.bounded) return parseS3Uri(spec.model.exportUri);
  const versions = parseS3Uri(spec.model.versionsUri ?? spec.model.exportUri);
  return { ...versions, key: `${versions.key}${"?".repeat(14)}-${spec.jobId}/` };
}

/**
 * The policy of one job's role: its own registry partition, its own queues by exact name, and
 * its own S3 prefixes; reads of the model it starts from and of the secrets its spec names (by
 * full ARN); writes only where its export goes.
 * Pure: `test/unit/workers/job-role.test.ts` checks that two jobs' documents share no resource.
 */
export function jobRolePolicy(spec: JobSpec, where: JobRoleResources): PolicyDocument {
  const { partition, region, accountId } = where;
  const s3Arn = (bucket: string, key = "") => `arn:${partition}:s3:::${bucket}${key ? `/${key}` : ""}`;
  const own = jobKeys.prefix(spec.jobId);
  const reads = [{ bucket: spec.bucket, key: own }, ...[spec.modelArtifactUri, spec.initModelUri].filter((u): u is string => u !== null).map((u) => parseS3Uri(u))];
  const exportTo = exportLocation(spec);
  const queues = [...Object.values(spec.queues.feed), spec.queues.output, spec.queues.dlq].map((url) => `arn:${partition}:sqs:${region}:${accountId}:${queueName(url)}`);
  const buckets = [...new Set([...reads, ...(exportTo ? [exportTo] : [])].map((l) => l.bucket))];
  const statements: PolicyStatement[] = [
    {
      Sid: "OwnRegistryItems",
      Effect: "Allow",
      // TransactWriteItems is authorized as the item actions it contains.
      Action: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem", "dynamodb:Query"],
      Resource: [`arn:${partition}:dynamodb:${region}:${accountId}:table/${where.tableName}`],
      Condition: { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [`job#${spec.jobId}`] } },
    },
    {
      Sid: "OwnQueues",
      Effect: "Allow",
      Action: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"],
      Resource: queues,
    },
    { Sid: "ReadOwnObjects", Effect: "Allow", Action: ["s3:GetObject"], Resource: reads.map((l) => s3Arn(l.bucket, `${l.key}*`)) },
    {
      Sid: "WriteOwnObjects",
      Effect: "Allow",
      Action: ["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"],
      Resource: ["spool/", "checkpoints/", "output/"].map((dir) => s3Arn(spec.bucket, `${own}${dir}*`)),
    },
    ...buckets.map(
      (bucket, i): PolicyStatement => ({
        Sid: `ListOwnPrefixes${i}`,
        Effect: "Allow",
        Action: ["s3:ListBucket"],
        Resource: [s3Arn(bucket)],
        Condition: { StringLike: { "s3:prefix": [...reads, ...(exportTo ? [exportTo] : [])].filter((l) => l.bucket === bucket).map((l) => `${l.key}*`) } },
      }),
    ),
  ];
  const secrets = Object.values(spec.python.secrets ?? {});
  if (secrets.length) statements.push({ Sid: "ReadOwnSecrets", Effect: "Allow", Action: ["secretsmanager:GetSecretValue"], Resource: [...new Set(secrets)] });
  if (exportTo) {
    statements.push({ Sid: "WriteOwnExport", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], Resource: [s3Arn(exportTo.bucket, `${exportTo.key}*`)] });
  }
  return { Version: "2012-10-17", Statement: statements };
}

/** Only ECS tasks of this account may assume a job role. */
export function jobRoleTrustPolicy(where: Pick<JobRoleResources, "accountId">) {
  return {
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Principal: { Service: "ecs-tasks.amazonaws.com" }, Action: "sts:AssumeRole", Condition: { StringEquals: { "aws:SourceAccount": where.accountId } } }],
  };
}

/** Creates and deletes job roles; both are idempotent, so a retried start or finish repeats them safely. */
export class JobRoles {
  constructor(
    readonly where: JobRoleResources,
    private readonly iam: IAMClient = new IAMClient({}),
  ) {}

  arnOf(jobId: string): string {
    return `arn:${this.where.partition}:iam::${this.where.accountId}:role${this.path}${jobRoleName(jobId)}`;
  }

  /** This deployment's job role path. */
  get path(): string {
    return jobRolePath(this.where.region, this.where.tableName);
  }

  /** The job's role with its policy in force; returns its ARN. */
  async ensure(spec: JobSpec): Promise<string> {
    const RoleName = jobRoleName(spec.jobId);
    try {
      await this.iam.send(
        new CreateRoleCommand({
          RoleName,
          Path: this.path,
          PermissionsBoundary: this.where.boundaryArn,
          AssumeRolePolicyDocument: JSON.stringify(jobRoleTrustPolicy(this.where)),
          Description: `serverless-tf worker tasks of job ${spec.jobId}; deleted when the job ends`,
          MaxSessionDuration: 12 * 3600,
          Tags: [{ Key: "serverless-tf:job", Value: spec.jobId }],
        }),
      );
    } catch (e) {
      if (!(e instanceof EntityAlreadyExistsException)) throw e;
    }
    await this.iam.send(new PutRolePolicyCommand({ RoleName, PolicyName: JOB_ROLE_POLICY, PolicyDocument: JSON.stringify(jobRolePolicy(spec, this.where)) }));
    return this.arnOf(spec.jobId);
  }

  async remove(jobId: string): Promise<void> {
    const RoleName = jobRoleName(jobId);
    for (const command of [new DeleteRolePolicyCommand({ RoleName, PolicyName: JOB_ROLE_POLICY }), new DeleteRoleCommand({ RoleName })]) {
      try {
        await this.iam.send(command as DeleteRoleCommand);
      } catch (e) {
        if (!(e instanceof NoSuchEntityException)) throw e;
      }
    }
  }
}
