/**
 * How workers start: local processes on this machine, or ECS tasks on AWS. The coordinator
 * sees only this interface.
 */
import type { JobSpec } from "../jobs/spec.ts";

export interface MemberRef {
  readonly role: "worker" | "ps";
  readonly index: number;
}

export interface WorkerExit {
  readonly member: MemberRef;
  readonly code: number | null;
  readonly signal: string | null;
  /** The last lines the worker wrote to stderr: its traceback when it failed. */
  readonly tail: string;
}

/** A progress line a worker printed (`STF_PROGRESS {...}`). */
export interface WorkerProgress {
  readonly member: MemberRef;
  readonly epoch?: number;
  readonly step?: number;
  readonly loss?: number;
  readonly accuracy?: number;
  readonly examples_per_sec?: number;
  readonly [key: string]: unknown;
}

export interface LaunchedWorkers {
  /** Exits seen so far, in order. */
  readonly exits: readonly WorkerExit[];
  /** Starts one member again (after a failure), with the same arguments. */
  relaunch(member: MemberRef): Promise<void>;
  /**
   * Resume after a failure: kills every member still running, waits until each exit is in
   * `exits`, then starts the whole member set as restart `attempt` (its workers meet at the
   * start barrier `start-<attempt>`; one released barrier cannot be met twice). A launcher
   * without it cannot resume: a lost member then fails the job.
   */
  restart?(attempt: number): Promise<void>;
  /** Stops every member still running and waits for it. */
  stop(): Promise<void>;
}

export interface WorkerLauncher {
  launch(spec: JobSpec, members: readonly MemberRef[], hooks?: { onProgress?: (p: WorkerProgress) => void; onExit?: (e: WorkerExit) => void }): Promise<LaunchedWorkers>;
}
