/**
 * One pipeline stage as a Lambda function, with its own role and log group so that every
 * permission it holds is one the stack granted, on the architecture its definition names. Two
 * packagings:
 * - `zip`: the folder `npm run build` writes for the function's bundle (`dist/functions/<bundle>/`,
 *   its `index.mjs` bundled with everything it imports by scripts/build.ts), as a Node.js 22 zip
 *   with the layers its definition names: synth only stages the folder, the bundle deployed is the
 *   one the tests ran;
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
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { acknowledge } from "../nag.ts";
import type { FunctionArchitecture, FunctionDefinition } from "../../src/resources/definitions.ts";

/** How the function's code is packaged. */
export type StageCode =
  /** A folder holding the bundle `index.mjs` (`dist/functions/<name>/`), deployed as a zip. */
  | { readonly kind: "zip"; readonly directory: string }
  /** A Dockerfile (`functions/<name>/Dockerfile`), built with `context` (the source root) as context. */
  | { readonly kind: "image"; readonly context: string; readonly dockerfile: string };

export interface StageFunctionProps {
  readonly definition: FunctionDefinition;
  readonly code: StageCode;
  readonly environment: Readonly<Record<string, string>>;
  /** Zip functions only: an image function carries everything in its image. */
  readonly layers?: readonly lambda.ILayerVersion[];
  /** The sizes as deployed (the definition's, or the props' over them). */
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
  readonly reservedConcurrency: number;
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
      memorySize: props.memoryMb,
      timeout: Duration.seconds(props.timeoutSeconds),
      reservedConcurrentExecutions: props.reservedConcurrency,
      role: this.role,
      logGroup: this.logGroup,
    };
    if (props.code.kind === "image") {
      this.fn = new lambda.DockerImageFunction(this, "Function", {
        ...common,
        code: lambda.DockerImageCode.fromImageAsset(props.code.context, {
          file: relative(props.code.context, props.code.dockerfile),
          platform: definition.architecture === "x86_64" ? Platform.LINUX_AMD64 : Platform.LINUX_ARM64,
        }),
        architecture: lambdaArchitecture(definition.architecture),
        environment: { ...props.environment },
      });
      return;
    }
    this.fn = new lambda.Function(this, "Function", {
      ...common,
      code: lambda.Code.fromAsset(props.code.directory),
      handler: "index.handler",
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambdaArchitecture(definition.architecture),
      layers: props.layers ? [...props.layers] : [],
      environment: { ...props.environment },
    });
    acknowledge(
      this.fn,
      "AwsSolutions-L1",
      "Node.js 22 on purpose: the version the handlers are bundled for (esbuild target node22) and tested with; move to the next LTS together with the local toolchain.",
    );
  }
}

/** A definition's architecture as CDK names it: for functions, and for the layers they take. */
export function lambdaArchitecture(architecture: FunctionArchitecture): lambda.Architecture {
  return architecture === "x86_64" ? lambda.Architecture.X86_64 : lambda.Architecture.ARM_64;
}
