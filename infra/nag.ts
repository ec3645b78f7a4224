/**
 * cdk-nag AwsSolutions findings this stack accepts. Each one is acknowledged where the
 * permission or setting is made, by its exact finding id (cdk-nag 3 has no bulk suppression),
 * with the reason it is accepted; anything else the pack reports interrupts the synth.
 * `writeSuppressionsToCloudFormation` copies every acknowledgement and its reason into the
 * template's `Metadata.cdk_nag`, which the stack test reads.
 */
import { Stack, Validations, type CfnElement } from "aws-cdk-lib";
import type { IConstruct } from "constructs";

/** Acknowledges one finding (`AwsSolutions-IAM5[Resource::...]`) on a construct and its children. */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/**
 * The id cdk-nag gives a wildcard-resource finding for a pattern under a resource's ARN:
 * `<LogicalId.Arn>/jobs/*` is how it renders `Fn::GetAtt [LogicalId, Arn]` + `/jobs/*`.
 */
export function wildcardUnderArn(element: CfnElement, suffix: string): string {
  return `AwsSolutions-IAM5[Resource::<${Stack.of(element).resolve(element.logicalId)}.Arn>/${suffix}]`;
}
