#!/usr/bin/env node
/**
 * `serverless-tf`: the package's command line.
 *
 *   serverless-tf local              start the embedded default and print its endpoint (Ctrl-C stops it)
 *   serverless-tf jobs [JOB] [-f]    list the registry's jobs, or one job's state, members and shards (-f: follow until it ends)
 *   serverless-tf demo               the digits demo: a 2-worker fit, a transform, the inference function
 *   serverless-tf synth | deploy     how to synthesize and deploy the stack
 *
 * It talks to the endpoint in `AWS_ENDPOINT_URL` (an emulator), else to AWS with the usual
 * credentials, and to the registry table `SERVERLESS_TF_TABLE` (default serverless-tf-registry).
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { depsFromEnv } from "./jobs/deps.ts";
import { memberKey } from "./protocol/names.ts";
import { FINAL_JOB_STATES, type JobRecord } from "./registry/types.ts";
import { LocalRuntime } from "./runtime/local-runtime.ts";

const USAGE = `usage: serverless-tf <command>
  local              start the embedded default (moto server unless AWS_ENDPOINT_URL is set) and print its endpoint
  jobs [JOB] [-f]    list jobs, or show one job (-f: follow it until it ends)
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

async function jobs(jobId: string | undefined, follow: boolean): Promise<number> {
  const { registry } = depsFromEnv();
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
    case "jobs":
      return jobs(rest.find((a) => !a.startsWith("-")), rest.includes("-f") || rest.includes("--follow"));
    case "demo":
      // The demo ships beside the library (demo/ of a checkout, dist/lib/demo/ of the package).
      await import(new URL(`../demo/digits${extname(fileURLToPath(import.meta.url))}`, import.meta.url).href);
      return Number(process.exitCode ?? 0);
    case "synth":
    case "deploy":
      console.log(
        `The stack is an AWS CDK app in the repository's infra/ folder (see its README): from a checkout,\n` +
          `  cd infra && npx cdk ${command} -c prefix=serverless-tf -c dataBuckets=<your-bucket>\n` +
          `A CDK construct for your own app is not part of this release yet.`,
      );
      return 0;
    default:
      console.error(USAGE);
      return command === undefined || command === "help" || command === "--help" ? 0 : 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
