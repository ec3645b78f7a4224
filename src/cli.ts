#!/usr/bin/env node
/**
 * `serverless-tf`: the package's command line.
 *
 *   serverless-tf local              start the embedded default and print its endpoint (Ctrl-C stops it)
 *   serverless-tf jobs [JOB] [-f] [--stack NAME]
 *                                    list the registry's jobs, or one job's state, members and shards (-f: follow until it ends);
 *                                    --stack: the registry of a deployed stack, found from its outputs
 *   serverless-tf demo               the digits demo: a 2-worker fit, a transform, the inference function
 *   serverless-tf synth | deploy     how to synthesize and deploy the stack
 *
 * It talks to the endpoint in `AWS_ENDPOINT_URL` (an emulator), else to AWS with the usual
 * credentials, and to the registry table `SERVERLESS_TF_TABLE` (default serverless-tf-registry) or
 * the one of the stack named by `--stack`.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { depsFromEnv } from "./jobs/deps.ts";
import { memberKey } from "./protocol/names.ts";
import { FINAL_JOB_STATES, type JobRecord } from "./registry/types.ts";
import type { Registry } from "./registry/registry.ts";
import { LocalRuntime } from "./runtime/local-runtime.ts";
import { StackRuntime } from "./runtime/stack-runtime.ts";

const USAGE = `usage: serverless-tf <command>
  local              start the embedded default (moto server unless AWS_ENDPOINT_URL is set) and print its endpoint
  jobs [JOB] [-f] [--stack NAME]
                     list jobs, or show one job (-f: follow it until it ends); --stack: a deployed stack's registry
  demo               run the digits demo on the embedded default
  synth | deploy     how to synthesize and deploy the stack with the AWS CDK`;

const age = (ms: number) => `${Math.round((Date.now() - ms) / 1000)} s ago`;

async function local(): Promise<void> {
  const runtime = await LocalRuntime.start();
  console.log(`endpoint ${runtime.endpoint}\nbucket   ${runtime.bucket}\ntable    ${runtime.deps.config.tableName}`);
  console.log(`export AWS_ENDPOINT_URL=${runtime.endpoint}   # in another shell, then: serverless-tf jobs`);
  await new Promise<void>((resolve) => process.once("SIGINT", resolve));
  await runtime.close();
}

function describeJob(job: JobRecord): string {
  return `${job.jobId.padEnd(28)} ${job.mode.padEnd(9)} ${job.state.padEnd(9)} ${age(job.createdAt)}${job.error ? `  ${job.error.split("\n")[0]}` : ""}`;
}

async function jobs(registry: Registry, jobId: string | undefined, follow: boolean): Promise<number> {
  if (!jobId) {
    const all = await registry.listJobs();
    console.log(all.length ? all.map(describeJob).join("\n") : "no jobs in the registry");
    return 0;
  }
  for (;;) {
    const job = await registry.getJob(jobId);
    if (!job) {
      console.error(`no job ${jobId} in the registry (serverless-tf jobs lists them)`);
      return 1;
    }
    const [members, shards, checkpoint] = await Promise.all([registry.members(jobId), registry.shards(jobId), registry.latestCheckpoint(jobId)]);
    console.log(describeJob(job));
    for (const m of members) console.log(`  ${memberKey(m).padEnd(10)} ${m.status.padEnd(7)} epoch ${m.epoch}  step ${m.progress?.step ?? "-"}  rows ${m.progress?.rowsConsumed ?? "-"}  heartbeat ${age(m.heartbeatAt)}`);
    for (const s of shards) console.log(`  shard ${s.shardId}  cursor ${s.cursor}${s.done ? "  done" : ""}`);
    if (checkpoint) console.log(`  checkpoint step ${checkpoint.step} at ${checkpoint.uri}`);
    if (!follow || FINAL_JOB_STATES.includes(job.state)) return job.state === "FAILED" ? 1 : 0;
    await new Promise((r) => setTimeout(r, 2_000));
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "local":
      await local();
      return 0;
    case "jobs": {
      const at = rest.indexOf("--stack");
      const stackName = at >= 0 ? rest[at + 1] : undefined;
      if (at >= 0 && !stackName) {
        console.error("--stack takes the stack's name (the one `cdk deploy` printed)");
        return 2;
      }
      const args = rest.filter((a, i) => !a.startsWith("-") && (at < 0 || i !== at + 1));
      const follow = rest.includes("-f") || rest.includes("--follow");
      if (!stackName) return jobs(depsFromEnv().registry, args[0], follow);
      const runtime = await StackRuntime.fromStack(stackName);
      try {
        return await jobs(runtime.deps.registry, args[0], follow);
      } finally {
        await runtime.close();
      }
    }
    case "demo":
      // The demo ships beside the library (demo/ of a checkout, dist/lib/demo/ of the package).
      await import(new URL(`../demo/digits${extname(fileURLToPath(import.meta.url))}`, import.meta.url).href);
      return Number(process.exitCode ?? 0);
    case "synth":
    case "deploy":
      console.log(
        `serverless-tf deploys with the AWS CDK. In your own CDK app:\n` +
          `  import { ServerlessTf } from "serverless-tf/cdk";\n` +
          `  new ServerlessTf(stack, "ServerlessTf", { servedModels: ["my-model"], dataBucketNames: ["my-data"] });\n` +
          `then \`npx cdk ${command}\`. From a checkout of the repository: cd infra && npx cdk ${command} (infra/README.md).\n` +
          `Programs then switch LocalRuntime.start() for StackRuntime.fromStack("<stack name>").`,
      );
      return 0;
    default:
      console.error(USAGE);
      return command === undefined || command === "help" || command === "--help" ? 0 : 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
