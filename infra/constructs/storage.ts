/**
 * Where state lives: the artifacts bucket (job data, models) with its access-log bucket, and the
 * registry table, built from `REGISTRY_TABLE` so the emulator and AWS share one definition.
 */
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import { acknowledge, wildcardUnderArn } from "../nag.ts";
import { BUCKET_PREFIXES, LIFECYCLE, REGISTRY_TABLE } from "../../src/resources/definitions.ts";

export interface StorageProps {
  /** Registry table name; the functions and workers get it through `SERVERLESS_TF_TABLE`. */
  readonly tableName: string;
  /** What `cdk destroy` does with the bucket and table; default RETAIN (models and job history survive). */
  readonly removalPolicy?: RemovalPolicy;
}

export class Storage extends Construct {
  readonly bucket: s3.Bucket;
  readonly accessLogs: s3.Bucket;
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: StorageProps) {
    super(scope, id);
    // Log delivery through a bucket policy (the S3 user guide's recommendation) instead of the
    // LogDeliveryWrite ACL, so both buckets keep ACLs disabled (BucketOwnerEnforced).
    this.node.setContext("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", true);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.accessLogs = new s3.Bucket(this, "AccessLogs", {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      // Server access log delivery supports SSE-S3 only, not SSE-KMS (S3 user guide).
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: "expire-access-logs", expiration: Duration.days(90) }],
      removalPolicy,
    });

    const jobs = BUCKET_PREFIXES.jobs;
    const tag = (value: string) => ({ [LIFECYCLE.tagKey]: value });
    this.bucket = new s3.Bucket(this, "Artifacts", {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: "artifacts/",
      // A published version's files, once overwritten or deleted, can still be read back.
      versioned: true,
      // Rule filters take a prefix and tags, never a wildcard: `jobs/*/checkpoints/` is reached
      // through the whole `jobs/` prefix and through the kind tag its writer sets.
      lifecycleRules: [
        { id: "abort-incomplete-uploads", abortIncompleteMultipartUploadAfter: Duration.days(LIFECYCLE.abortIncompleteUploadDays) },
        { id: "expire-noncurrent-versions", noncurrentVersionExpiration: Duration.days(LIFECYCLE.noncurrentVersionsExpireDays) },
        { id: "expire-job-data", prefix: jobs, expiration: Duration.days(LIFECYCLE.jobsExpireDays) },
        { id: "expire-checkpoints", prefix: jobs, tagFilters: tag("checkpoint"), expiration: Duration.days(LIFECYCLE.checkpointsExpireDays) },
        { id: "expire-spool-parts", prefix: jobs, tagFilters: tag("spool"), expiration: Duration.days(LIFECYCLE.spoolExpireDays) },
      ],
      removalPolicy,
    });

    this.table = new dynamodb.Table(this, "Registry", {
      tableName: props.tableName,
      partitionKey: { name: REGISTRY_TABLE.partitionKey.name, type: attributeType(REGISTRY_TABLE.partitionKey.type) },
      sortKey: { name: REGISTRY_TABLE.sortKey.name, type: attributeType(REGISTRY_TABLE.sortKey.type) },
      billingMode: dynamodb.BillingMode[REGISTRY_TABLE.billingMode],
      timeToLiveAttribute: REGISTRY_TABLE.timeToLiveAttribute,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: removalPolicy === RemovalPolicy.RETAIN,
      removalPolicy,
    });
  }

  /**
   * Object-level access under key patterns (`jobs/*\/spool/*`), spelled out action by action:
   * the CDK `grantReadWrite` helpers use wildcard actions such as `s3:GetObject*`.
   */
  grantObjects(role: iam.IRole, actions: readonly ObjectAction[], keyPatterns: readonly string[]): void {
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: actions.map((a) => `s3:${a}`), resources: keyPatterns.map((k) => this.bucket.arnForObjects(k)) }));
    for (const pattern of keyPatterns) {
      acknowledge(
        role,
        wildcardUnderArn(this.bucket.node.defaultChild as s3.CfnBucket, pattern),
        `Object keys under ${pattern} of the artifacts bucket only: job ids and model versions are made at run time, so the key layout of docs/protocol.md is the narrowest fixed scope.`,
      );
    }
  }

  /** `ListBucket` limited to the given key prefixes through the `s3:prefix` condition. */
  grantList(role: iam.IRole, prefixes: readonly string[]): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["s3:ListBucket"],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { "s3:prefix": prefixes.flatMap((p) => [p, `${p}*`]) } },
      }),
    );
  }
}

export type ObjectAction = "GetObject" | "PutObject" | "DeleteObject" | "AbortMultipartUpload" | "PutObjectTagging";

function attributeType(type: "S" | "N" | "B"): dynamodb.AttributeType {
  return { S: dynamodb.AttributeType.STRING, N: dynamodb.AttributeType.NUMBER, B: dynamodb.AttributeType.BINARY }[type];
}
