"""The worker's entry point: ``python -m serverless_tf.worker --job-id J --role worker --index 0``.

Reads the job from the registry, applies the spec's ``python.env`` (before TensorFlow loads),
registers with a lease, reads ``python.secrets`` from Secrets Manager into the environment,
waits at the ``start`` barrier, sets
TF_CONFIG and the strategy, imports the user's scripts and calls the entry function with
``ctx``. With parameter servers only the chief runs the entry: a worker spools its feed for the
chief's dataset and serves steps, a ps serves variables, both until the chief is DONE.
Marks the member DONE or FAILED and always exits:

====  ==========================================================================
code  meaning
====  ==========================================================================
0     the entry function returned (inference: after end-of-output was sent), or, serving a
      parameter-server chief, the chief is DONE
1     the entry function, the feed or the barrier failed (member marked FAILED)
2     bad invocation: unknown job, a job already over, an invalid spec
3     fenced: another registration took this member's slot
4     the job was stopped or ended by someone else while this worker ran, or the chief it
      served FAILED
5     SIGTERM during ``model.fit``: the set saved a checkpoint and this worker left
      (python/serverless_tf/worker/preemption.py); the job watch restarts the set from it
====  ==========================================================================
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
import traceback
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

from ..aws import client
from ..protocol.exits import EXIT_FAILED, EXIT_FENCED, EXIT_JOB_ENDED, EXIT_USAGE
from ..protocol.names import member_name
from ..protocol.spec import JobSpec, SpecError
from ..registry import JOB_ENDING_STATES, LeaseKeeper, LeaseLoss, Registry, RegistryError, table_name_from_env
from .progress import say

if TYPE_CHECKING:
    from .context import Context

TRACEBACK_TAIL_LINES = 30


@dataclass(frozen=True)
class WorkerArgs:
    job_id: str
    role: str
    index: int
    table: str
    host: str
    attempt: int = 0


def parse_args(argv: Optional[Sequence[str]] = None) -> WorkerArgs:
    """Parses the command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m serverless_tf.worker", description="Run one member of a serverless-tf job.")
    p.add_argument("--job-id", required=True, help="the job to join")
    p.add_argument("--role", required=True, choices=["worker", "ps", "chief"], help="the member's role (chief: parameter-server training only)")
    p.add_argument("--index", required=True, type=int, help="the member's index within its role (worker 0 is the chief without parameter servers)")
    p.add_argument("--table", default=None, help="registry table (default: $SERVERLESS_TF_TABLE or serverless-tf-registry)")
    p.add_argument("--host", default=None,
                   help="address other members reach this one at (default: $SERVERLESS_TF_HOST, else the ECS task's private IP "
                        "from the task metadata endpoint, else 127.0.0.1)")
    p.add_argument("--attempt", default=0, type=int,
                   help="restart attempt of the member set (0 = first run); attempt N meets at barrier start-N")
    a = p.parse_args(argv)
    if a.index < 0:
        p.error(f"--index must be >= 0. Received: {a.index}")
    if a.attempt < 0:
        p.error(f"--attempt must be >= 0. Received: {a.attempt}")
    return WorkerArgs(a.job_id, a.role, a.index, a.table or table_name_from_env(), a.host or default_host(os.environ), a.attempt)


def default_host(env: Mapping[str, str], fetch: Callable[[str], bytes] = lambda url: urllib.request.urlopen(url, timeout=2).read()) -> str:
    """The address peers reach this process at: set explicitly, else on ECS (Fargate, awsvpc) the task's
    private IPv4 from the task metadata endpoint v4, else the loopback for local processes."""
    if env.get("SERVERLESS_TF_HOST"):
        return env["SERVERLESS_TF_HOST"]
    metadata_uri = env.get("ECS_CONTAINER_METADATA_URI_V4")
    if metadata_uri:
        container = json.loads(fetch(metadata_uri))
        for network in container.get("Networks", []):
            for ip in network.get("IPv4Addresses", []):
                return str(ip)
        raise RuntimeError(f"the ECS task metadata at {metadata_uri} lists no IPv4 address; set SERVERLESS_TF_HOST")
    return "127.0.0.1"


def barrier_name(attempt: int) -> str:
    """The start barrier of an attempt: a barrier is released once per name, so each restart of the member set needs its own."""
    return "start" if attempt == 0 else f"start-{attempt}"


def free_port(host: str) -> int:
    """A TCP port free on ``host`` right now (TensorFlow's gRPC server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def rejoin_address(registry: Registry, args: WorkerArgs, spec: JobSpec) -> Optional[str]:
    """A worker started again alone under parameter servers: the address its attempt's cluster spec
    gives it, since the running chief knows the cluster by those addresses. ``None`` otherwise."""
    if not spec.cluster.ps or args.role != "worker":
        return None
    cluster = registry.released_barrier(args.job_id, barrier_name(args.attempt))
    if not cluster or len(cluster.get("worker", [])) <= args.index:
        return None
    address = cluster["worker"][args.index]
    return address if address.rsplit(":", 1)[0] == args.host else None


def apply_user_env(env: Mapping[str, str]) -> None:
    """Sets ``spec.python.env`` in ``os.environ``: before TensorFlow or the user's code is imported, so both see it."""
    os.environ.update(env)


def traceback_tail(text: str, lines: int = TRACEBACK_TAIL_LINES) -> str:
    """The last ``lines`` lines of a traceback: what the member's ``error`` keeps."""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])



def run(args: WorkerArgs) -> int:
    """Runs one member to the end; returns the exit code (see the module docstring)."""
    registry = Registry(args.table)
    member = member_name(args.role, args.index)
    job = registry.get_job(args.job_id)
    if job is None:
        say(f"job {args.job_id!r} is not in the registry table {args.table}; check --job-id and --table / SERVERLESS_TF_TABLE")
        return EXIT_USAGE
    if job.state in JOB_ENDING_STATES:
        say(f"job {args.job_id} is already {job.state}; nothing to run for {member}")
        return EXIT_USAGE
    try:
        spec = JobSpec.from_dict(job.spec)  # no TensorFlow in the parser: it loads only after the user's env is set
    except SpecError as e:
        say(f"the spec of job {args.job_id} is invalid: {e}")
        return EXIT_USAGE
    apply_user_env(spec.python.env)
    if spec.cluster.ps:
        # Parameter-server training: a call to a lost worker fails at once, so the coordinator can
        # reschedule its closure instead of waiting on it (TensorFlow's ParameterServerStrategy guide).
        os.environ["GRPC_FAIL_FAST"] = "use_caller"
    count = spec.cluster.count(args.role)
    if args.index >= count:
        say(f"{member} is not part of job {args.job_id}: its cluster has {count} {args.role}(s). Received: --index {args.index}")
        return EXIT_USAGE

    address = rejoin_address(registry, args, spec) or f"{args.host}:{free_port(args.host)}"
    lease = registry.register(args.job_id, args.role, args.index, address, os.getpid(), spec.lease_ms)
    say(f"{member} of job {args.job_id} registered at {address} (epoch {lease.epoch}, attempt {args.attempt})")
    ctx_holder: dict[str, Any] = {}

    def on_loss(loss: LeaseLoss) -> None:
        if loss.reason == "fenced":
            say(f"{member} was fenced: {loss.detail}. Another worker holds this slot now; this one exits")
            os._exit(EXIT_FENCED)  # the main thread may be inside a collective op: leave at once
        if loss.reason == "expired":
            say(f"{member} fences itself: {loss.detail}")
            os._exit(EXIT_FENCED)
        say(f"{member} stops: {loss.detail}")
        os._exit(EXIT_JOB_ENDED)

    keeper = LeaseKeeper(registry, args.job_id, args.role, args.index, lease.epoch, spec.lease_ms, on_loss=on_loss,
                         progress=lambda: ctx_holder["ctx"].progress() if "ctx" in ctx_holder else None)
    keeper.start()
    try:
        if spec.python.secrets:  # before TensorFlow and the user's code load, as python.env is
            from .secrets import resolve_secrets

            os.environ.update(resolve_secrets(spec.python.secrets, client("secretsmanager")))
        ctx = _prepare(args, spec, registry, lease.epoch, keeper.check)
        ctx_holder["ctx"] = ctx
        if spec.cluster.ps and args.role != "chief":
            code = _serve_chief(ctx, registry)
            keeper.stop()
            if code == 0:
                _mark(registry, args, lease.epoch, "DONE", None)
                say(f"{member} DONE: the chief finished")
            return code
        from .user_code import download_scripts, load_entry

        scripts = download_scripts(ctx.s3, spec.python.scripts, Path(tempfile.mkdtemp(prefix="stf-code-")))
        entry = load_entry(scripts, spec.python.entry)
        say(f"{member} calls {spec.python.entry}(ctx) from {scripts[0].name}")
        entry(ctx)
        if spec.mode == "inference":
            rows = ctx.end_output()
            say(f"{member} sent end-of-output after {rows} rows")
    except BaseException as e:  # noqa: B902 - KeyboardInterrupt and SystemExit from user code also fail the member
        text = traceback.format_exc()
        print(text, file=sys.stderr, flush=True)
        keeper.stop()
        _mark(registry, args, lease.epoch, "FAILED", traceback_tail(text))
        say(f"{member} FAILED: {type(e).__name__}: {e}")
        return EXIT_FAILED
    keeper.stop()
    _mark(registry, args, lease.epoch, "DONE", None)
    say(f"{member} DONE")
    return 0


def _prepare(args: WorkerArgs, spec: JobSpec, registry: Registry, epoch: int, fence: Callable[[], None]) -> "Context":
    """Start barrier, TF_CONFIG and strategy (before any other TensorFlow op), then the context."""
    from .context import Context
    from .strategy import make_strategy

    cluster = registry.await_barrier(args.job_id, barrier_name(args.attempt), spec.cluster.barrier_counts(), spec.barrier_deadline_ms)
    strategy = make_strategy(spec.cluster.worker, spec.cluster.ps, cluster, args.role, args.index)
    return Context(
        job_id=spec.job_id, mode=spec.mode, role=args.role, index=args.index, epoch=epoch,
        is_chief=args.role == "chief" or (not spec.cluster.ps and args.role == "worker" and args.index == 0), cluster_spec=cluster,
        hyper_params=spec.python.hyper_params, spec=spec, registry=registry,
        s3=client("s3"), sqs=client("sqs"), strategy_object=strategy, attempt=args.attempt, fence=fence,
    )


def _serve_chief(ctx: "Context", registry: Registry, poll_s: float = 1.0) -> int:
    """A worker or ps under parameter servers: its server already runs (make_strategy); a worker
    spools its feed for the chief's dataset. Then it waits for the chief, taking on the chief's step
    as its own progress (its heartbeats would otherwise look hung to the job watch)."""
    if ctx.role == "worker":
        ctx.spool_for_chief()
    while True:
        chief = next((m for m in registry.members(ctx.job_id) if m.role == "chief"), None)
        if chief is not None and chief.status == "DONE":
            return 0
        if chief is not None and chief.status == "FAILED":
            say(f"{ctx.member} stops: the chief FAILED")
            return EXIT_JOB_ENDED
        if chief is not None and chief.progress is not None:
            with ctx._lock:
                ctx.step = chief.progress.step
        time.sleep(poll_s)


def _mark(registry: Registry, args: WorkerArgs, epoch: int, status: str, error: Optional[str]) -> None:
    try:
        registry.mark_member(args.job_id, args.role, args.index, epoch, status, error)  # type: ignore[arg-type]
    except RegistryError as e:
        say(f"could not mark {args.role}-{args.index} {status}: {e}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point (``serverless-tf-worker``)."""
    args = parse_args(argv)
    try:
        return run(args)
    except RegistryError as e:
        say(f"{args.role}-{args.index} of job {args.job_id}: {e}")
        return EXIT_USAGE

