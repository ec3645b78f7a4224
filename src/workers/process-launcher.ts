/**
 * Launches workers as local processes of the project virtualenv's Python: the embedded
 * default, and what the tests use. Log lines are prefixed with job, role and index.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { projectPython, projectRoot, pythonChildEnv } from "./paths.ts";
import type { JobSpec } from "../protocol/spec.ts";
import type { LaunchedWorkers, WorkerExit, WorkerLauncher, WorkerProgress } from "./launcher.ts";
import { type MemberRef } from "../protocol/names.ts";
import { memberKey } from "../protocol/names.ts";

export interface ProcessLauncherOptions {
  /** Extra environment for the workers (endpoint, table, bucket). */
  readonly env: Readonly<Record<string, string>>;
  /** Where prefixed worker log lines go; default: nowhere (the failure tail is kept either way). */
  readonly log?: (line: string) => void;
  readonly tailLines?: number;
}

const PROGRESS_PREFIX = "STF_PROGRESS ";

export class ProcessLauncher implements WorkerLauncher {
  constructor(private readonly options: ProcessLauncherOptions) {}

  async launch(spec: JobSpec, members: readonly MemberRef[], hooks: { onProgress?: (p: WorkerProgress) => void; onExit?: (e: WorkerExit) => void } = {}): Promise<LaunchedWorkers> {
    const running = new Map<string, ChildProcess>();
    const exits: WorkerExit[] = [];
    const tailLines = this.options.tailLines ?? 40;
    const start = (member: MemberRef, attempt = 0) => {
      const name = memberKey(member);
      const args = ["-m", "serverless_tf.worker", "--job-id", spec.jobId, "--role", member.role, "--index", String(member.index), "--attempt", String(attempt)];
      const child = spawn(projectPython, args, {
        cwd: projectRoot,
        env: { ...process.env, ...this.options.env, ...pythonChildEnv() },
        stdio: ["ignore", "pipe", "pipe"],
      });
      running.set(name, child);
      const tail: string[] = [];
      const prefix = `[${spec.jobId} ${name}] `;
      createInterface({ input: child.stdout! }).on("line", (line) => {
        if (line.startsWith(PROGRESS_PREFIX)) {
          try {
            hooks.onProgress?.({ ...(JSON.parse(line.slice(PROGRESS_PREFIX.length)) as object), member });
          } catch {
            // a malformed progress line is only a log line
          }
        }
        this.options.log?.(prefix + line);
      });
      createInterface({ input: child.stderr! }).on("line", (line) => {
        tail.push(line);
        if (tail.length > tailLines) tail.shift();
        this.options.log?.(prefix + line);
      });
      child.once("exit", (code, signal) => {
        if (running.get(name) === child) running.delete(name);
        // Let readline drain what the process wrote last (its traceback) before reporting.
        setImmediate(() => {
          const exit: WorkerExit = { member, code, signal, tail: tail.join("\n") };
          exits.push(exit);
          hooks.onExit?.(exit);
        });
      });
    };
    members.forEach((m) => start(m));
    const exited = (child: ChildProcess) =>
      new Promise<void>((resolve) => {
        // The exit entry is pushed on the tick after "exit" (see above); resolve after it.
        if (child.exitCode !== null || child.signalCode !== null) return setImmediate(resolve);
        child.once("exit", () => setImmediate(() => setImmediate(resolve)));
      });
    return {
      exits,
      restart: async (attempt) => {
        const children = [...running.values()];
        children.forEach((child) => child.kill("SIGKILL"));
        await Promise.all(children.map(exited));
        members.forEach((m) => start(m, attempt));
      },
      restartMember: async (member, attempt) => {
        const child = running.get(memberKey(member));
        if (child) {
          child.kill("SIGKILL");
          await exited(child);
        }
        start(member, attempt);
      },
      stop: async () => {
        const waits = [...running.values()].map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once("exit", () => resolve());
              child.kill("SIGTERM");
              setTimeout(() => child.kill("SIGKILL"), 5_000).unref();
            }),
        );
        await Promise.all(waits);
      },
    };
  }
}
