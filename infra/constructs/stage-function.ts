/**
 * One pipeline stage as a Lambda function, with its own role and log group so that every
 * permission it holds is one the stack granted. Two packagings:
 * - `bundle`: `functions/<name>/handler.ts` bundled by esbuild at synth time (the project's
 *   pinned esbuild from node_modules, no Docker, no network) into a Node.js 22 zip;
 * - `image`: a container image built from `functions/<name>/Dockerfile` with the repository root
 *   as context (the root `.dockerignore` says what it holds), for a function that needs more than
 *   Node (the inference function spawns a Python TensorFlow process). Synth only stages the
 *   context; `cdk deploy` builds and pushes the image.
 */
import { relative } from "node:path";
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import { Platform } from "aws-cdk-lib/aws-ecr-assets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { acknowledge } from "../nag.ts";
import type { FunctionDefinition } from "../../src/resources/definitions.ts";

/** How the function's code is packaged. */
export type StageCode =
  /** The handler module (`functions/<name>/handler.ts`), bundled into a zip. */
  | { readonly kind: "bundle"; readonly entry: string }
  /** The Dockerfile (`functions/<name>/Dockerfile`), built with the repository root as context. */
  | { readonly kind: "image"; readonly dockerfile: string };

export interface StageFunctionProps {
  readonly definition: FunctionDefinition;
  readonly code: StageCode;
  /** The repository root: where `package-lock.json` and `node_modules/` are. */
  readonly projectRoot: string;
  readonly environment: Readonly<Record<string, string>>;
  /** Zip bundles only: an image function carries everything in its image. */
  readonly layers?: readonly lambda.ILayerVersion[];
  /** Overrides of the definition's sizes (stack props / context). */
  readonly memoryMb?: number;
  readonly timeoutSeconds?: number;
  readonly reservedConcurrency?: number;
  readonly logRetention?: logs.RetentionDays;
}

export class StageFunction extends Construct {
  readonly fn: lambda.Function;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: StageFunctionProps) {
    super(scope, id);
    const { definition } = props;
    this.logGroup = new logs.LogGroup(this, "Logs", { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
    // Our own role instead of the default one: the default attaches the managed
    // AWSLambdaBasicExecutionRole, which may write to any log group in the account.
    this.role = new iam.Role(this, "Role", { assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"), description: `serverless-tf ${definition.name} stage` });
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["logs:CreateLogStream", "logs:PutLogEvents"], resources: [this.logGroup.logGroupArn] }));

    const common = {
      memorySize: props.memoryMb ?? definition.memoryMb,
      timeout: Duration.seconds(props.timeoutSeconds ?? definition.timeoutSeconds),
      reservedConcurrentExecutions: props.reservedConcurrency ?? definition.reservedConcurrency,
      role: this.role,
      logGroup: this.logGroup,
    };
    if (props.code.kind === "image") {
      this.fn = new lambda.DockerImageFunction(this, "Function", {
        ...common,
        code: lambda.DockerImageCode.fromImageAsset(props.projectRoot, {
          file: relative(props.projectRoot, props.code.dockerfile),
          // tensorflow-cpu wheels are built for x86-64 (as for the worker image).
          platform: Platform.LINUX_AMD64,
        }),
        architecture: lambda.Architecture.X86_64,
        environment: { ...props.environment },
      });
      return;
    }
    this.fn = new nodejs.NodejsFunction(this, "Function", {
      ...common,
      entry: props.code.entry,
      handler: "handler",
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      layers: props.layers ? [...props.layers] : [],
      environment: { ...props.environment, NODE_OPTIONS: "--enable-source-maps" },
      projectRoot: props.projectRoot,
      depsLockFilePath: `${props.projectRoot}/package-lock.json`,
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: "node22",
        minify: true,
        sourceMap: true,
        // Bundle the pinned AWS SDK rather than use the runtime's copy: the handlers then run the
        // same client versions in Lambda as in the local runtime and the tests.
        externalModules: [],
        mainFields: ["module", "main"],
        // CommonJS dependencies bundled into an ES module still call require() for Node builtins.
        banner: "import { createRequire as __stfCreateRequire } from 'node:module'; const require = __stfCreateRequire(import.meta.url);",
        forceDockerBundling: false,
      },
    });
    acknowledge(
      this.fn,
      "AwsSolutions-L1",
      "Node.js 22 on purpose: the version the handlers are bundled for (esbuild target node22) and tested with; move to the next LTS together with the local toolchain.",
    );
  }
}
