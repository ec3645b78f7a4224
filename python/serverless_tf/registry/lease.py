"""Keeping a lease: the heartbeat thread every worker runs while it holds its member slot."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional

from .client import Registry
from .errors import FencedError
from .items import JOB_ENDING_STATES, Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseLoss:
    """Why a :class:`LeaseKeeper` stopped on its own: ``fenced`` (another registration took the slot)
    or ``job-ended`` (the job reached a final state or STOPPING)."""

    reason: Literal["fenced", "job-ended"]
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

    @property
    def interval_s(self) -> float:
        return self.lease_ms / 3 / 1000

    def start(self) -> "LeaseKeeper":
        if self._thread is not None:
            raise RuntimeError("LeaseKeeper.start() was already called; make a new keeper for a new lease.")
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.job_id}-{self.role}-{self.index}", daemon=True)
        self._thread.start()
        return self

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
        self.loss = loss
        self._stop.set()
        try:
            self.on_loss(loss)
        except Exception:  # the callback's failure must not hide the loss
            log.exception("LeaseKeeper on_loss callback failed for %s-%s of job %s", self.role, self.index, self.job_id)

    def _tick(self) -> None:
        try:
            progress = self.progress() if self.progress else None
            self.registry.heartbeat(self.job_id, self.role, self.index, self.epoch, self.lease_ms, progress)
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
