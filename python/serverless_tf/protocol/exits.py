"""A worker process's exit codes: the contract with the job watch and the launchers.

The TypeScript side is src/protocol/worker-exits.ts; test/unit/protocol/worker-exits.test.ts
checks that both say the same.
"""
#: The user's entry raised, or the member could not be marked.
EXIT_FAILED = 1
#: Bad arguments, a job that is not in the registry or already ended, an invalid spec.
EXIT_USAGE = 2
#: Another process holds this member's slot, or the lease lapsed: this one stopped writing.
EXIT_FENCED = 3
#: The job ended (FAILED, CANCELLED, DONE) while this member ran.
EXIT_JOB_ENDED = 4
#: SIGTERM arrived during ``fit``; the set saved a checkpoint and this member left (worker/preemption.py).
EXIT_PREEMPTED = 5

WORKER_EXITS = {"failed": EXIT_FAILED, "usage": EXIT_USAGE, "fenced": EXIT_FENCED, "jobEnded": EXIT_JOB_ENDED, "preempted": EXIT_PREEMPTED}
