/**
 * The runtime a demo runs on: the embedded default, or with `--stack` the stack as deployed, hosted
 * locally (src/hosted/hosted-stack.ts) and reached through the deployed-stack runtime, exactly as a
 * program reaches a stack on AWS with `StackRuntime.fromStack`.
 */
import { hostedStackRuntime } from "../src/hosted/hosted-stack.ts";
import { LocalRuntime, type StackRuntime } from "../src/index.ts";

export async function demoRuntime(): Promise<LocalRuntime | StackRuntime> {
  const runtime = process.argv.includes("--stack") ? (await hostedStackRuntime(process.env.STF_HOSTED_LOG ? { log: (l) => console.error(l) } : {})).runtime : await LocalRuntime.start();
  console.log(`runtime: ${runtime.describe()}`);
  return runtime;
}
