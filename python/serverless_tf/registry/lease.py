"""Keeping a lease: the heartbeat thread every worker runs while it holds its member slot."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional

from .client import Registry
from .errors import FencedError, LeaseLostError
from .items import JOB_ENDING_STATES, Progress

log = logging.getLogger(__name__)

#: How long past its lease a worker that could not renew it goes on before it stops itself: half
#: of the job watch's ``leaseGraceMs`` (5 s, src/jobs/watch-round.ts DEFAULT_WATCH_POLICY), after
#: which the watch declares the lease lost and restarts the member. The other half, 2.5 s, is the
#: budget for the skew between this host's clock and the watch's.
SELF_FENCE_AFTER_S = 2.5


@dataclass(frozen=True)
class LeaseLoss:
    """Why a :class:`LeaseKeeper` stopped on its own: ``fenced`` (another registration took the slot),
    ``expired`` (no heartbeat renewed the lease before it ran out: the registry was unreachable) or
    ``job-ended`` (the job reached a final state or STOPPING)."""

    reason: Literal["fenced", "expired", "job-ended"]
    detail: str
    error: Optional[BaseException] = None
    job_state: Optional[str] = None


@dataclass
class LeaseKeeper:
    """A daemon thread that heartbeats a member's lease every ``lease_ms / 3``.

    When the heartbeat is fenced, or the job is found in a final state (SUCCEEDED, FAILED, STOPPED)
    or STOPPING, it records a :class:`LeaseLoss` in ``loss``, calls ``on_loss`` once and stops: the
    worker uses the callback to exit. Other errors (a network blip) are logged and retried at the
    next tick; if the slot was taken meanwhile, that tick is fenced.

    Self-fencing: a worker that cannot reach the registry cannot learn that it was replaced, so
    when no heartbeat has renewed the lease by :data:`SELF_FENCE_AFTER_S` after it ran out on this
    host's clock (measured from the start of the last successful renewal), a second thread
    reports ``expired``, even while a heartbeat call hangs. The job watch declares a lease lost,
    and lets a replacement register, only ``leaseGraceMs`` after it ran out on its own clock.

    Example:
        >>> keeper = LeaseKeeper(registry, job_id, "worker", 0, lease.epoch, 10_000, on_loss=lambda loss: os._exit(3))  # doctest: +SKIP
        >>> keeper.start()  # doctest: +SKIP
        >>> keeper.stop()   # doctest: +SKIP
    """

    registry: Registry
    job_id: str
    role: str
    index: int
    epoch: int
    lease_ms: int
    on_loss: Callable[[LeaseLoss], None] = lambda loss: None
    #: Called at every tick; its value is written as the member's ``progress``.
    progress: Optional[Callable[[], Optional[Progress]]] = None
    loss: Optional[LeaseLoss] = field(default=None, init=False)
    last_error: Optional[BaseException] = field(default=None, init=False)
    heartbeats: int = field(default=0, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: Optional[threading.Thread] = field(default=None, init=False, repr=False)
    _lost: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    #: time.monotonic() at which the lease last renewed runs out (registration: at start()).
    _valid_until: float = field(default=0.0, init=False, repr=False)

    @property
    def interval_s(self) -> float:
        return self.lease_ms / 3 / 1000

    def start(self) -> "LeaseKeeper":
        if self._thread is not None:
            raise RuntimeError("LeaseKeeper.start() was already called; make a new keeper for a new lease.")
        self._valid_until = time.monotonic() + self.lease_ms / 1000
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.job_id}-{self.role}-{self.index}", daemon=True)
        self._thread.start()
        threading.Thread(target=self._watch_expiry, name=f"lease-expiry-{self.job_id}-{self.role}-{self.index}", daemon=True).start()
        return self

    def check(self) -> None:
        """Raises :class:`LeaseLostError` unless this member still holds its lease on this host's clock
        (with the expiry thread's margin, :data:`SELF_FENCE_AFTER_S`).

        Every write of the member's job calls it first (feed deletes and visibility, output
        sends, spool parts, checkpoints, exports): SQS and S3 writes carry no condition the
        registry could refuse, so this is their fence. A process paused past its lease (a frozen
        VM, SIGSTOP) resumes into this check before its expiry thread has run, and writes nothing.
        A lapse found here is reported as ``expired`` through ``on_loss``, as the expiry thread
        would. After :meth:`stop` (the member is finishing) it checks nothing.
        """
        if self._thread is None:
            raise RuntimeError("LeaseKeeper.check() before start(): no lease is kept yet")
        if self._stop.is_set() and self.loss is None:
            return
        if self.loss is None and time.monotonic() >= self._valid_until + SELF_FENCE_AFTER_S:
            self._lose(LeaseLoss("expired", f"a write found the lease of {self.role}-{self.index} run out on this host's clock "
                                            f"{time.monotonic() - self._valid_until:.1f} s ago, unrenewed (last error: {self.last_error!r})"))
        if self.loss is not None:
            raise LeaseLostError(self.role, self.index, self.job_id, self.loss.detail)

    def stop(self, timeout_s: Optional[float] = None) -> None:
        """Stops heartbeating (the lease then runs out on its own) and waits for the thread."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def wait(self, timeout_s: Optional[float] = None) -> Optional[LeaseLoss]:
        """Waits until the keeper stops on its own or is stopped; returns the loss, if any."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.loss

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "LeaseKeeper":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _lose(self, loss: LeaseLoss) -> None:
        with self._lost:
            if self.loss is not None or self._stop.is_set():
                return  # reported once; or stopped by its owner, whose lease then runs out as it should
            self.loss = loss
            self._stop.set()
        try:
            self.on_loss(loss)
        except Exception:  # the callback's failure must not hide the loss
            log.exception("LeaseKeeper on_loss callback failed for %s-%s of job %s", self.role, self.index, self.job_id)

    def _watch_expiry(self) -> None:
        while not self._stop.wait(min(0.25, self.interval_s)):
            if time.monotonic() >= self._valid_until + SELF_FENCE_AFTER_S:
                self._lose(LeaseLoss("expired", f"no heartbeat renewed the lease of {self.role}-{self.index} within its {self.lease_ms} ms "
                                                f"(last error: {self.last_error!r}); the job watch may have replaced this member, so it stops writing"))
                return

    def _tick(self) -> None:
        try:
            progress = self.progress() if self.progress else None
            started = time.monotonic()
            self.registry.heartbeat(self.job_id, self.role, self.index, self.epoch, self.lease_ms, progress)
            self._valid_until = started + self.lease_ms / 1000
            self.heartbeats += 1
        except FencedError as e:
            self._lose(LeaseLoss("fenced", str(e), error=e))
            return
        job = self.registry.get_job(self.job_id)
        if job is not None and job.state in JOB_ENDING_STATES:
            self._lose(LeaseLoss("job-ended", f"job {self.job_id} is {job.state}", job_state=job.state))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._tick()
            except Exception as e:  # retried at the next tick; the lease has two more ticks of slack
                self.last_error = e
                log.warning("heartbeat of %s-%s of job %s failed, retrying: %s", self.role, self.index, self.job_id, e)
