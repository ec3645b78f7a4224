"""A checkpoint on SIGTERM: the notice Fargate Spot (and ECS's StopTask) gives before SIGKILL.

Under MultiWorkerMirroredStrategy only one worker gets the notice, but every worker must save at
the same step: saving is collective there (:class:`~serverless_tf.worker.callbacks.CheckpointCallback`).
The noticed worker, at the end of its step N, announces step N + 1 through TensorFlow's
coordination service (the key-value store the strategy already runs) and waits until each worker
has read it. No peer can finish step N + 1 before the noticed worker takes part in that step's
all-reduce, so each sees the announcement first. Every worker saves at N + 1; the noticed one
then waits until the chief has recorded that checkpoint in the registry and exits with
:data:`EXIT_PREEMPTED`, and the job watch restarts the set from it. Under parameter servers a lost
worker does not stop the job (the chief reschedules its steps), so this is not installed there.

The handler is installed only while ``model.fit`` runs with ``ctx.callbacks()``; elsewhere (the
feed, the export) SIGTERM ends the process as before.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..protocol.exits import EXIT_PREEMPTED
from .progress import progress_line, say

if TYPE_CHECKING:
    from .context import Context

STEP_KEY = "serverless_tf/preemption/step"
#: How long the noticed worker waits for its peers' acknowledgements, then for the chief's record.
#: Spot gives two minutes between SIGTERM and SIGKILL.
WAIT_S = 60.0


def _ack_key(index: int) -> str:
    return f"serverless_tf/preemption/ack/{index}"


class Preemption:
    """One ``model.fit``'s SIGTERM handling (see the module docstring).

    Args:
        workers: the workers of the set (1: no peers, no coordination service).
        index: this worker's index.
        recorded_step: the step of the registry's latest checkpoint (``None`` if none).
        leave: ends the process (tests pass a fake).
    """

    def __init__(self, workers: int, index: int, recorded_step: Callable[[], Optional[int]], leave: Callable[[int], None] = os._exit):
        self.workers = workers
        self.index = index
        self._recorded_step = recorded_step
        self._leave = leave
        self.noticed = threading.Event()
        #: The step every worker saves at, once announced (by this worker or a peer).
        self.save_at: Optional[int] = None
        self._previous: Any = None
        self._stopped = threading.Event()
        self._watcher: Optional[threading.Thread] = None

    def start(self) -> None:
        """Installs the SIGTERM handler (main thread) and, with peers, starts reading announcements."""
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._stopped = threading.Event()
        if self.workers > 1:
            self._watcher = threading.Thread(target=self._watch, name="stf-preemption", daemon=True)
            self._watcher.start()

    def stop(self) -> None:
        """Puts the previous SIGTERM handler back; the announcement reader stops within a second."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
        self._stopped.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        # The main thread runs this between two steps; the step's end does the rest.
        self.noticed.set()

    def _watch(self) -> None:
        from tensorflow.python.eager import context

        import tensorflow as tf

        while not self._stopped.is_set():
            try:
                value = context.context().get_config_key_value(STEP_KEY, timeout_in_ms=1000)
            except tf.errors.DeadlineExceededError:
                continue  # nothing announced yet
            except Exception:  # noqa: BLE001 - the service is unreachable (its leader is lost): the set restarts anyway
                self._stopped.wait(1.0)
                continue
            self.save_at = int(value)  # before the acknowledgement: the noticed worker runs on once it has all of them
            context.context().set_config_key_value(_ack_key(self.index), "1")
            return

    def after_step(self, step: int) -> Optional[str]:
        """Called at the end of every step with the model's step. Returns ``"save"`` when this step
        is the one to save at; announces the next step when this worker has been noticed."""
        if self.save_at is None and self.noticed.is_set():
            self._announce(step + 1)
        return "save" if self.save_at == step else None

    def _announce(self, step: int) -> None:
        say(f"worker-{self.index} got SIGTERM at step {step - 1}: every worker saves a checkpoint at step {step}")
        print(progress_line({"kind": "preempted", "step": step - 1, "save_at": step}), flush=True)
        if self.workers == 1:
            self.save_at = step
            return
        from tensorflow.python.eager import context

        try:
            context.context().set_config_key_value(STEP_KEY, str(step))
        except Exception:  # noqa: BLE001 - AlreadyExists: a peer was noticed first; its step holds
            pass
        deadline = time.monotonic() + WAIT_S
        for i in range(self.workers):
            left_ms = int((deadline - time.monotonic()) * 1000)
            try:
                context.context().get_config_key_value(_ack_key(i), timeout_in_ms=max(left_ms, 1))
            except Exception as e:  # noqa: BLE001
                say(f"worker-{i} did not acknowledge the checkpoint step within {WAIT_S:.0f} s ({type(e).__name__}); no checkpoint on SIGTERM")
                return
        # Every watcher, this worker's own included, has set save_at by now.

    def after_save(self, step: int) -> None:
        """After the save at :attr:`save_at`: the noticed worker waits for the chief's record, then leaves."""
        if not self.noticed.is_set():
            return  # a peer of the noticed worker trains on until the set restarts
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            recorded = self._recorded_step()
            if recorded is not None and recorded >= step:
                say(f"worker-{self.index} leaves after SIGTERM: the checkpoint at step {step} is recorded")
                self._leave(EXIT_PREEMPTED)
                return
            time.sleep(0.1)
        say(f"worker-{self.index} leaves after SIGTERM: no checkpoint at step {step} was recorded within {WAIT_S:.0f} s")
        self._leave(EXIT_PREEMPTED)


def preemption_for(ctx: "Context") -> Preemption:
    """The :class:`Preemption` of a member of ``ctx``'s set."""

    def recorded_step() -> Optional[int]:
        latest = ctx.registry.latest_checkpoint(ctx.job_id)
        return latest.step if latest is not None else None

    return Preemption(ctx.spec.cluster.worker, ctx.index, recorded_step)

