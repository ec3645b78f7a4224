/**
 * A worker process's exit codes, as python/serverless_tf/protocol/exits.py defines them: what the
 * job watch reads from an exit. test/unit/protocol/worker-exits.test.ts checks both sides agree.
 */
export const WORKER_EXITS = {
  /** The user's entry raised, or the member could not be marked. */
  failed: 1,
  /** Bad arguments, a job not in the registry or already ended, an invalid spec. */
  usage: 2,
  /** Another process holds the member's slot, or its lease lapsed: it stopped writing. */
  fenced: 3,
  /** The job ended while the member ran. */
  jobEnded: 4,
  /** SIGTERM arrived during `fit`; the set saved a checkpoint and the member left. */
  preempted: 5,
} as const;
