/**
 * The serverless-tf stack of this repository's CDK app (infra/app.ts): the `ServerlessTf`
 * construct alone in a stack, which gives it the outputs a runtime for the deployed stack reads
 * (`STACK_OUTPUTS`, src/resources/definitions.ts). In your own app, put the construct in your
 * own stack instead (`import { ServerlessTf } from "serverless-tf/cdk"`): it adds the same outputs
 * there.
 */
import { Stack, type StackProps } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { ServerlessTf, type ServerlessTfProps } from "./serverless-tf.ts";

export interface ServerlessTfStackProps extends StackProps, ServerlessTfProps {}

export class ServerlessTfStack extends Stack {
  readonly tf: ServerlessTf;

  constructor(scope: Construct, id: string, props: ServerlessTfStackProps = {}) {
    super(scope, id, props);
    this.tf = new ServerlessTf(this, "ServerlessTf", props);
  }
}
