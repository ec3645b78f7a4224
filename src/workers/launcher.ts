/**
 * How workers start: local processes on this machine, or ECS tasks on AWS. The coordinator
 * sees only this interface.
 */
import type { MemberRef } from "../protocol/names.ts";
import type { JobSpec, WorkerCapacity } from "../protocol/spec.ts";
import type { WorkerHandle } from "../protocol/watch-message.ts";

export type { MemberRef, WorkerHandle };

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
  /**
   * Resume after a failure: kills every member still running, waits until each exit is in
   * `exits`, then starts the whole member set as restart `attempt` (its workers meet at the
   * start barrier `start-<attempt>`; one released barrier cannot be met twice). A launcher
   * without it cannot resume: a lost member then fails the job.
   */
  restart?(attempt: number): Promise<void>;
  /**
   * Starts one member again, alone, in the running `attempt` (parameter-server training: a lost
   * worker rejoins the cluster at its address while the others go on). A launcher without it
   * cannot bring a member back on its own address (an ECS task gets a new IP).
   */
  restartMember?(member: MemberRef, attempt: number): Promise<void>;
  /** Stops every member still running and waits for it. */
  stop(): Promise<void>;
  /** The members still running, for a watcher in another process (`WorkerLauncher.attach`). */
  handles?(): readonly WorkerHandle[];
  /** Looks once for members that stopped, adding them to `exits` (a launcher that does not watch on its own). */
  refresh?(): Promise<void>;
}

export interface WorkerLauncher {
  launch(spec: JobSpec, members: readonly MemberRef[], hooks?: { onProgress?: (p: WorkerProgress) => void; onExit?: (e: WorkerExit) => void }): Promise<LaunchedWorkers>;
  /**
   * Takes over members another process launched, from their handles (the job-watch stage: one
   * invocation per round). Their exits appear after `refresh()`; `members` is the whole set, for `restart`.
   */
  attach?(spec: JobSpec, members: readonly MemberRef[], handles: readonly WorkerHandle[]): LaunchedWorkers;
  /** Throws a `ConfigError` when this launcher cannot place a job's workers on `capacity`; called before anything of the job is made. */
  checkCapacity?(jobId: string, capacity: WorkerCapacity | undefined): void;
}
